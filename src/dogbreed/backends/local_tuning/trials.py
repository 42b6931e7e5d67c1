"""Trial bookkeeping, pure: names, states, the budget, the best trial.

The study's trials (Optuna FrozenTrials, read duck-typed: .number, .state.name, .value,
.params, .user_attrs) become `TrialSummary`s, the one shape the ledger, the live table and
the JSON answer share. Statuses use SageMaker's words: a pruned trial is an early-stopped
job, 'Stopped'.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

# Optuna TrialState name -> the status people and the ledger see.
STATUS = {"WAITING": "Pending", "RUNNING": "InProgress", "COMPLETE": "Completed", "PRUNED": "Stopped", "FAIL": "Failed"}
FINISHED = ("Completed", "Stopped", "Failed")

# user_attrs the runner sets on each trial.
ATTR_PARAMS = "params"  # train.* name -> typed value
ATTR_OBJECTIVE = "objective"  # the objective metric when the trial ended (pruned trials too)
ATTR_TEST_ACC = "test_acc"  # for information only; never used to choose
ATTR_FAILURE = "failure"
ATTR_RETRIED = "retried"  # interrupted by a kill; its params were queued again
ATTR_EPOCHS = "epochs"  # epochs the job reported


def trial_name(tuning: str, number: int) -> str:
    """The training job of trial `number`: 'mytune-t003'."""
    return f"{tuning}-t{number:03d}"


@dataclass
class TrialSummary:
    number: int
    name: str
    status: str
    params: dict[str, Any] = field(default_factory=dict)
    objective: float | None = None
    test_acc: float | None = None
    failure: str | None = None
    retried: bool = False
    epochs: int | None = None

    @property
    def finished(self) -> bool:
        """Spent one unit of max_jobs. An interrupted trial that was queued again did not."""
        return self.status in FINISHED and not self.retried

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def summarize(tuning: str, frozen: Any) -> TrialSummary:
    attrs = frozen.user_attrs
    status = STATUS.get(frozen.state.name, frozen.state.name)
    objective = frozen.value if status == "Completed" else attrs.get(ATTR_OBJECTIVE)
    return TrialSummary(
        number=frozen.number,
        name=trial_name(tuning, frozen.number),
        status=status,
        params=dict(attrs.get(ATTR_PARAMS) or frozen.params),
        objective=objective,
        test_acc=attrs.get(ATTR_TEST_ACC),
        failure=attrs.get(ATTR_FAILURE),
        retried=bool(attrs.get(ATTR_RETRIED)),
        epochs=attrs.get(ATTR_EPOCHS),
    )


def summarize_all(tuning: str, frozen_trials: Iterable[Any]) -> list[TrialSummary]:
    return sorted((summarize(tuning, trial) for trial in frozen_trials), key=lambda t: t.number)


def finished_count(trials: Iterable[TrialSummary]) -> int:
    return sum(1 for trial in trials if trial.finished)


def running_count(trials: Iterable[TrialSummary]) -> int:
    return sum(1 for trial in trials if trial.status == "InProgress")


def budget_left(trials: list[TrialSummary], budget: int) -> int:
    """Trials still to start: running ones will count once they finish."""
    return max(0, budget - finished_count(trials) - running_count(trials))


def best(trials: Iterable[TrialSummary], maximize: bool) -> TrialSummary | None:
    """The best completed trial; ties go to the earlier one. Stopped (pruned) trials trained
    fewer epochs than asked, so they are not candidates, as on SageMaker."""
    done = [t for t in trials if t.status == "Completed" and t.objective is not None]
    if not done:
        return None
    sign = -1 if maximize else 1
    return min(done, key=lambda t: (sign * t.objective, t.number))


def first_failure(trials: Iterable[TrialSummary]) -> TrialSummary | None:
    failed = [t for t in trials if t.status == "Failed" and not t.retried]
    return min(failed, key=lambda t: t.number) if failed else None


def tuning_state(trials: list[TrialSummary], budget: int) -> str:
    """The tuning job's state once no worker runs: SageMaker's HyperParameterTuningJobStatus."""
    if finished_count(trials) < budget:
        return "Stopped"  # interrupted before the budget was spent; `tune` again resumes
    if any(t.status == "Completed" for t in trials):
        return "Completed"
    return "Failed"
