"""The tuning third of LocalBackend: the Backend protocol's tuning methods on the local engine.

A TuningRequest becomes a TuningSetup (what every worker process reads from setup.json) and a
LocalTuningJob that starts, follows and settles the workers. The answer is the one the tune
workflow records and prints; trial rows are written by the engine as trials run.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from dogbreed.backends.base import TrialsSink, TuningRequest, TuningStarted
from dogbreed.backends.local_tuning.job import LocalTuningJob
from dogbreed.backends.local_tuning.study import TuningSetup
from dogbreed.backends.local_tuning.trials import trial_name
from dogbreed.config import Config
from dogbreed.progress import Reporter
from dogbreed.workspace import Workspace


def setup_of(request: TuningRequest) -> TuningSetup:
    return TuningSetup(request.name, request.config, request.dataset_uri, request.manifest_sha256, request.fingerprint or "")


def example_params(setup: TuningSetup) -> dict[str, Any]:
    """The first point the local sampler would try: what --dry-run shows a trial with."""
    import optuna

    from dogbreed.backends.local_tuning.strategy import make_sampler
    from dogbreed.tuning.space import suggest

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=make_sampler(setup.config.tune, setup.space))
    return suggest(study.ask(), setup.space)


class LocalTuning:
    """Mixin of LocalBackend, which sets config, workspace and reporter."""

    config: Config
    workspace: Workspace
    reporter: Reporter

    @property
    def _tuning_locks(self) -> dict[str, int]:
        """Tuning job name -> its job lock's descriptor, from start_tuning to the end of wait_tuning."""
        return self.__dict__.setdefault("_held_tuning_locks", {})

    def _tuning_job(self, request: TuningRequest) -> LocalTuningJob:
        return LocalTuningJob(setup_of(request), self.workspace.ledger, resumed=request.resumed)

    def plan_tuning(self, request: TuningRequest) -> dict[str, Any]:
        """The engine, the budget and the first trial's exact job; nothing runs."""
        from dogbreed.backends.local_tuning import strategy
        from dogbreed.backends.local_tuning.runner import job_request, trial_training
        from dogbreed.tuning.space import apply

        setup = setup_of(request)
        tune = setup.config.tune
        params = example_params(setup)
        first = trial_name(setup.name, 0)
        training = trial_training(setup)
        job = training.plan_training(job_request(setup, first, apply(setup.config, params)))
        return {
            "backend": "local",
            "tuning_job": setup.name,
            "resumes": request.resumed,
            "strategy": tune.strategy,
            **strategy.describe(tune, setup.space, setup.config.train.epochs),
            "max_jobs": setup.budget,
            "max_parallel_jobs": tune.max_parallel_jobs,
            "dataset_uri": setup.dataset_uri,
            "storage": str(Path(setup.config.workspace) / "tuning" / setup.name / "journal.log"),
            "example_trial": {"name": first, "params": params, "command": job["command"], "cwd": job["cwd"]},
        }

    def start_tuning(self, request: TuningRequest, wait: bool = True) -> TuningStarted:
        """Settle what a killed run left, then start workers: attached to this process when
        it waits (a terminal's Ctrl-C reaches them), in sessions of their own for --no-wait.

        All under the job's lock (BusyError naming the holder when another `tune` runs the
        job), taken before anything in its folder is touched: one process settles, starts
        and replaces workers. Kept until wait_tuning ends; a --no-wait start lets it go once
        its workers run, and a later `tune --name` takes it to follow them."""
        job = self._tuning_job(request)
        lock = job.setup.job_lock().acquire()
        try:
            for note in [*job.begin(), *job.settle()]:
                self.reporter.info(note)
            pids = job.launch(detached=not wait)
        except BaseException:
            os.close(lock)
            raise
        if wait:
            self._tuning_locks[request.name] = lock
        else:
            os.close(lock)
        return TuningStarted(uri=str(job.folder), extra={"workers": pids, "follow": f"dogbreed tune --name {request.name}"})

    def wait_tuning(self, request: TuningRequest, on_trials: TrialsSink | None = None) -> dict[str, Any]:
        job = self._tuning_job(request)
        lock = self._tuning_locks.pop(request.name, None)
        if lock is None:
            lock = job.setup.job_lock().acquire()
        try:
            return job.run(on_trials or (lambda trials: None))
        finally:
            os.close(lock)
