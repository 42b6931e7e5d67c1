"""One trial: a real training job of train.py through the local backend, pruned per epoch.

The trial's params go through config.flags.with_params (validated and typed), become the
job's flags, and the job runs exactly as `dogbreed train` runs it: its own folder, log,
checkpoints and model.tar.gz under <workspace>/jobs/<tuning>-tNNN. Its epoch lines are read
with the SageMaker metric regexes (jobspec), reported to the study, and when the pruner
says so the job is stopped through the backend, as SageMaker's early stopping would.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dogbreed.backends.base import TrainingOutcome, TrainingRequest
from dogbreed.backends.local_training import LocalTraining
from dogbreed.backends.local_tuning.study import TuningSetup
from dogbreed.backends.local_tuning.trials import (
    ATTR_EPOCHS,
    ATTR_FAILURE,
    ATTR_OBJECTIVE,
    ATTR_PARAMS,
    ATTR_TEST_ACC,
    TrialSummary,
    trial_name,
)
from dogbreed.config import Config
from dogbreed.config.flags import hyperparameters
from dogbreed.errors import DogbreedError
from dogbreed.jobspec import metric_spec
from dogbreed.ledger import Ledger
from dogbreed.tuning.space import apply, suggest

if TYPE_CHECKING:  # warm_start imports torch lazily; a type needs none of it
    from dogbreed.backends.local_tuning.warm_start import WarmStart


def trial_training(setup: TuningSetup, launcher: WarmStart | None = None) -> LocalTraining:
    """The one way a tuning job gets the LocalTraining its trials run on (a worker passes its
    warmed launcher, so trials fork instead of exec)."""
    return LocalTraining(setup.config, setup.workspace, launcher=launcher)


def job_request(setup: TuningSetup, name: str, config: Config) -> TrainingRequest:
    return TrainingRequest(
        name=name,
        config=config,
        dataset_uri=setup.dataset_uri,
        hyperparameters=hyperparameters(config),
        manifest_sha256=setup.manifest_sha256,
        parent=setup.name,
    )


def record(ledger: Ledger, setup: TuningSetup, summary: TrialSummary, **extra: Any) -> None:
    """The trial as the ledger keeps it: kind 'trial', parent = the tuning job."""
    meta = {
        "number": summary.number,
        "params": summary.params,
        "metric": setup.metric,
        "objective": summary.objective,
        "test_acc": summary.test_acc,
        "state": summary.status,
        "failure": summary.failure,
        "retried": summary.retried,
        **extra,
    }
    if ledger.get("trial", summary.name, "local") is None:
        ledger.record("trial", summary.name, "local", state=summary.status, parent=setup.name, meta=meta)
    else:
        ledger.update("trial", summary.name, "local", state=summary.status, meta=meta)


TRAIN_ERROR = "train.py: error:"
MAX_FAILURE_CHARS = 300


def job_failure(outcome: TrainingOutcome) -> str:
    """One line saying why the job failed: train.py's own `train.py: error: ...` line when it
    printed one (its contract for bad inputs), else what the supervisor made of the log."""
    line = None
    if outcome.log_uri:
        try:
            text = Path(outcome.log_uri).read_text(errors="replace")
        except OSError:
            text = ""
        line = next((ln.strip() for ln in reversed(text.splitlines()) if ln.startswith(TRAIN_ERROR)), None)
    line = line or outcome.failure or f"the job ended {outcome.state}"
    return line if len(line) <= MAX_FAILURE_CHARS else line[: MAX_FAILURE_CHARS - 1] + "…"


def objective_of(outcome: TrainingOutcome, metric: str) -> float | None:
    value = outcome.metrics.get(metric)
    return None if value is None else float(value)


def _refuse_foreign_job(request: TrainingRequest, backend: LocalTraining) -> None:
    """A trial's job folder that another search left (its study's journal was reset or moved
    aside, so trial numbers start again): starting there would overwrite that job's request
    and read its old log and checkpoint as this trial's result."""
    found = backend.unrecorded_job(request)
    if found is not None and found[0] != found[1]:
        raise DogbreedError(
            f"training job {request.name} already exists with other settings (an earlier search under this name); "
            f"start the search with another --name, or move {backend.workspace.root / 'jobs' / request.name} aside"
        )


def _log_lines(log: Path) -> int:
    try:
        with log.open("rb") as handle:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 16), b""))
    except FileNotFoundError:
        return 0


# The supervisor's line once train.py has exited; packing model.tar.gz follows it.
_EXITED_OK = re.compile(r"^\[dogbreed\] \S+ train\.py exited with code 0\s*$")


class JobFinished(Exception):
    """train.py exited 0: the trial's metrics are final. Raised from the log sink so the
    worker need not wait while the supervisor gzips model.tar.gz (seconds per trial, and
    tuning never reads it); LocalTuning.finish waits for those jobs before answering."""


class EpochFollower:
    """The job's log sink: reports each epoch's objective and stops the job when pruned."""

    def __init__(
        self,
        trial: Any,
        setup: TuningSetup,
        summary: TrialSummary,
        epochs: int,
        backend: LocalTraining,
        ledger: Ledger,
        earlier_lines: int = 0,
    ) -> None:
        self.trial, self.setup, self.summary, self.epochs = trial, setup, summary, epochs
        self.backend, self.ledger = backend, ledger
        self.spec = metric_spec()
        self.last_epoch = 0
        self.pruned = False
        # wait_training replays the job's whole log; an earlier run's `exited with code 0`
        # or epochs are not this run's.
        self.earlier_lines = earlier_lines

    def __call__(self, line: str) -> None:
        if self.earlier_lines > 0:
            self.earlier_lines -= 1
            return
        if _EXITED_OK.match(line):
            raise JobFinished
        found = self.spec.parse_line(line)
        epoch = found.get(self.spec.epoch_key)
        value = found.get(self.setup.metric)
        # A resumed job may repeat an epoch; Optuna takes one report per step.
        if epoch is None or value is None or not math.isfinite(epoch) or int(epoch) <= self.last_epoch:
            return
        self.last_epoch = int(epoch)
        if not math.isfinite(value):
            return  # diverged: the pruner takes no nan, and the trial fails when it ends
        self.trial.report(value, self.last_epoch)
        self.summary.objective = value
        record(self.ledger, self.setup, self.summary, epoch=self.last_epoch, epochs=self.epochs)
        if not self.pruned and self.last_epoch < self.epochs and self.trial.should_prune():
            self.pruned = True
            self.backend.stop_training(self.summary.name)


def run_trial(setup: TuningSetup, study: Any, trial: Any, backend: LocalTraining, ledger: Ledger) -> TrialSummary:
    """Run the trial's job to its end and tell the study. A failure is recorded, not raised;
    KeyboardInterrupt (Ctrl-C, SIGTERM) stops the job and propagates: the trial stays
    RUNNING in the study and the next `tune` retries it (recovery.py)."""
    from optuna.trial import TrialState

    summary = TrialSummary(number=trial.number, name=trial_name(setup.name, trial.number), status="InProgress")
    try:
        params = suggest(trial, setup.space)
        summary.params = params
        trial.set_user_attr(ATTR_PARAMS, params)
        config = apply(setup.config, params)
        record(ledger, setup, summary, epoch=0, epochs=config.train.epochs)
        request = job_request(setup, summary.name, config)
        _refuse_foreign_job(request, backend)
        earlier = _log_lines(backend.workspace.root / "jobs" / summary.name / "train.log")
        backend.start_training(request)
        follower = EpochFollower(trial, setup, summary, config.train.epochs, backend, ledger, earlier)
        try:
            outcome = backend.wait_training(summary.name, follower)
        except JobFinished:
            outcome = backend.describe_training(summary.name)  # still packing: InProgress
            outcome.state = "Completed"
    except DogbreedError as exc:
        return fail(setup, study, trial, summary, ledger, str(exc))

    summary.test_acc = outcome.metrics.get("test_acc")
    summary.epochs = follower.last_epoch
    trial.set_user_attr(ATTR_EPOCHS, follower.last_epoch)
    if summary.test_acc is not None:
        trial.set_user_attr(ATTR_TEST_ACC, summary.test_acc)
    objective = objective_of(outcome, setup.metric)
    if outcome.state == "Completed" and objective is not None and not math.isfinite(objective):
        # Optuna fails a trial told nan by itself, silently; inf would be told as a best.
        return fail(setup, study, trial, summary, ledger, f"diverged: {setup.metric} was {objective}; see {outcome.log_uri}")
    if outcome.state == "Completed" and objective is not None:
        summary.status, summary.objective = "Completed", objective
        trial.set_user_attr(ATTR_OBJECTIVE, objective)
        study.tell(trial, objective)
    elif outcome.state == "Stopped" and follower.pruned:
        summary.status = "Stopped"
        trial.set_user_attr(ATTR_OBJECTIVE, summary.objective)
        study.tell(trial, state=TrialState.PRUNED)
    elif outcome.state == "Completed":
        return fail(setup, study, trial, summary, ledger, f"the job printed no {setup.metric}; see {outcome.log_uri}")
    else:
        return fail(setup, study, trial, summary, ledger, job_failure(outcome))
    record(ledger, setup, summary, model_uri=outcome.model_uri, log_uri=outcome.log_uri)
    return summary


def fail(setup: TuningSetup, study: Any, trial: Any, summary: TrialSummary, ledger: Ledger, failure: str) -> TrialSummary:
    from optuna.trial import TrialState

    summary.status, summary.failure = "Failed", failure.splitlines()[0] if failure else "failed"
    trial.set_user_attr(ATTR_FAILURE, summary.failure)
    study.tell(trial, state=TrialState.FAIL)
    record(ledger, setup, summary)
    return summary
