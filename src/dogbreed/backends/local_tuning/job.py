"""One local tuning job from start (or resume) to its answer.

begin() writes the job's setup and creates its study; launch() starts worker processes
(pool.py) unless some already run (a --no-wait start, a killed CLI's); follow() watches
them until the trial budget is spent, replacing workers that exit while trials remain;
settle() picks up trials a killed process left behind (recovery.py); finish() mirrors the
study's trials into the ledger's trial rows and answers. The tuning job's own ledger row is
not written here: the tune workflow records what this returns.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from dogbreed.backends.base import TuningFailed, TuningStopped
from dogbreed.backends.local_tuning.runner import trial_training
from dogbreed.backends.local_tuning.study import TuningSetup
from dogbreed.backends.local_tuning.trials import (
    FINISHED,
    TrialSummary,
    best,
    budget_left,
    finished_count,
    first_failure,
    summarize_all,
    tuning_state,
)
from dogbreed.errors import DogbreedError
from dogbreed.ledger import Ledger, Resource
from dogbreed.tuning.space import describe

REFRESH_SECONDS = 0.5  # the live table re-reads the study (a journal replay) this often
POLL_SECONDS = 0.05  # whether workers still run: pid files and /proc, cheap
PACKING_WAIT_SECONDS = 120


def answer(setup: TuningSetup, trials: list[TrialSummary], state: str, resumed: bool) -> dict[str, Any]:
    """DESIGN's tune answer: tuning_job, strategy, trials, best; and the rest people ask for."""
    top = best(trials, setup.maximize)
    tune = setup.config.tune
    return {
        "tuning_job": setup.name,
        "backend": "local",
        "state": state,
        "strategy": tune.strategy,
        "objective": tune.objective.model_dump(),
        "max_jobs": setup.budget,
        "resumed": resumed,
        "trials": [
            {
                "name": t.name,
                "params": t.params,
                "objective": t.objective,
                "status": t.status,
                "test_acc": t.test_acc,
                "epochs": t.epochs,
                "failure": t.failure,
                "retried": t.retried,
            }
            for t in trials
        ],
        "best": {"name": top.name, "params": top.params, "objective": top.objective, "test_acc": top.test_acc} if top else None,
        "search_space": describe(setup.space),
    }


class LocalTuningJob:
    """One local tuning job from start (or resume) to its answer."""

    def __init__(self, setup: TuningSetup, ledger: Ledger, resumed: bool = False) -> None:
        self.setup = setup
        self.ledger = ledger
        self.resumed = resumed
        self.folder = setup.folder
        self.training = trial_training(setup)
        self._study: Any = None

    @property
    def study(self) -> Any:
        from dogbreed.backends.local_tuning.study import open_study

        if self._study is None:
            self._study = open_study(self.setup)
        return self._study

    def trials(self) -> list[TrialSummary]:
        return summarize_all(self.setup.name, self.study.get_trials(deepcopy=False))

    def trial_records(self) -> list[Resource]:
        return self.ledger.list("trial", parent=self.setup.name)

    def begin(self) -> list[str]:
        """Notes for people: what was repaired on the way."""
        from dogbreed.backends.local_tuning import pool
        from dogbreed.backends.local_tuning.study import check_journal

        note = check_journal(self.setup.name, self.folder, repair=not pool.alive(self.folder))
        self.setup.save()
        self.study  # noqa: B018 - created before any worker opens it
        return [note] if note else []

    def settle(self) -> list[str]:
        """Trials a stopped or killed process left RUNNING; only while no worker runs."""
        from dogbreed.backends.local_tuning import pool
        from dogbreed.backends.local_tuning.recovery import recover

        if pool.alive(self.folder):
            return []
        return recover(self.setup, self.study, self.training, self.ledger)

    def launch(self, detached: bool) -> list[int]:
        """Start workers unless some already run (a --no-wait start, or a killed CLI's)."""
        from dogbreed.backends.local_tuning import pool

        running = pool.alive(self.folder)
        if running:
            return running
        left = budget_left(self.trials(), self.setup.budget)
        if left == 0:
            return []
        procs = pool.spawn(self.folder, min(self.setup.config.tune.max_parallel_jobs, left), detached)
        return [proc.pid for proc in procs]

    def follow(self, show: Callable[[list[Resource]], None]) -> None:
        """Until the budget is spent. Workers that all exit early are replaced while they make
        progress; a round with none is an error worth reading the worker log for."""
        from dogbreed.backends.local_tuning import pool

        finished_before = finished_count(self.trials())
        shown = 0.0
        while True:
            if pool.alive(self.folder):
                if time.monotonic() - shown >= REFRESH_SECONDS:
                    show(self.trial_records())
                    shown = time.monotonic()
                time.sleep(POLL_SECONDS)
                continue
            self.settle()
            trials = self.trials()
            if budget_left(trials, self.setup.budget) == 0:
                show(self.trial_records())
                return
            if finished_count(trials) == finished_before:
                raise DogbreedError(f"tuning workers stopped without finishing a trial: {self._worker_error()}")
            finished_before = finished_count(trials)
            self.launch(detached=False)

    def _worker_error(self) -> str:
        from dogbreed.backends.job_supervisor import last_error

        logs = sorted(self.folder.glob("worker-*.log"))
        return f"{last_error(logs[0])} (see {logs[0]})" if logs else f"no worker log in {self.folder}"

    def run(self, show: Callable[[list[Resource]], None]) -> dict[str, Any]:
        """follow() to the end and the answer. Ctrl-C stops the workers and raises
        TuningStopped with the answer so far, unless every trial had already finished: a job
        that completed is not reported interrupted."""
        try:
            self.follow(show)
        except KeyboardInterrupt:
            answer = self.interrupt()
            if answer["state"] == "Stopped":
                raise TuningStopped(answer) from None
            return answer
        return self.finish()

    def interrupt(self) -> dict[str, Any]:
        """Ctrl-C: stop the workers (each stops its job), settle, and leave a resumable job."""
        from dogbreed.backends.local_tuning import pool

        pool.stop(self.folder)
        self.settle()
        return self.finish()

    def _job_outcome(self, name: str) -> Any:
        """A finished trial's job once its supervisor is done packing model.tar.gz."""
        deadline = time.monotonic() + PACKING_WAIT_SECONDS
        outcome = self.training.describe_training(name)
        while outcome.state == "InProgress" and time.monotonic() < deadline:
            time.sleep(POLL_SECONDS)
            outcome = self.training.describe_training(name)
        return outcome

    def finish(self) -> dict[str, Any]:
        """The answer; trial rows mirror the study first. TuningFailed when every trial failed."""
        from dogbreed.backends.local_tuning.runner import record

        trials = self.trials()
        for trial in trials:  # the study is the truth; the ledger mirrors it for other commands
            if trial.status == "Completed":
                job = self._job_outcome(trial.name)
                record(self.ledger, self.setup, trial, model_uri=job.model_uri, log_uri=job.log_uri)
            elif trial.status in FINISHED:
                record(self.ledger, self.setup, trial)
        state = tuning_state(trials, self.setup.budget)
        result = answer(self.setup, trials, state, self.resumed)
        if state == "Failed":
            first = first_failure(trials)
            detail = f"first error ({first.name}): {first.failure}" if first else "no trial completed"
            log = self.training.workspace.root / "jobs" / first.name / "train.log" if first else None
            if log is not None and log.exists() and str(log) not in detail:
                detail += f"; its log: {log}"
            raise TuningFailed(f"every trial of tuning job {self.setup.name} failed; {detail}", result)
        return result
