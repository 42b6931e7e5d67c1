"""`tune`: one `tune.*` section, searched by Optuna locally or a HyperparameterTuner on SageMaker.

plan() decides which tuning job this is (a new one, or the one to resume: same --name, or
the latest unfinished job with the same search when no name is given) and checks the
search space before anything runs. Locally, LocalTuning runs the study in worker processes
(tuning/), follows it, settles trials a killed process left behind, and records the job
and its best trial in the ledger, where `train --from-tuning` finds the best params.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dogbreed.config import Config
from dogbreed.errors import DogbreedError, UsageError
from dogbreed.ledger import Ledger, Resource
from dogbreed.naming import MAX_LEN, check_name, unique_name
from dogbreed.tuning import trials as book
from dogbreed.tuning.space import build_space, describe
from dogbreed.workflows.train import resolve_dataset

RESUMABLE = ("InProgress", "Stopped")
REFRESH_SECONDS = 0.5  # the live table re-reads the study (a journal replay) this often
POLL_SECONDS = 0.05  # whether workers still run: pid files and /proc, cheap
PACKING_WAIT_SECONDS = 120


@dataclass(frozen=True)
class TunePlan:
    setup: Any  # tuning.study.TuningSetup
    resumed: bool
    previous_state: str | None = None


def fingerprint(config: Config, dataset_uri: str) -> str:
    """What makes two runs the same search. max_jobs and max_parallel_jobs are left out, so
    `tune --name X --set tune.max_jobs=20` extends a finished study; prewarm is how trials
    start, not what they train."""
    tune = config.tune.model_dump(mode="json", exclude={"name", "max_jobs", "max_parallel_jobs", "prewarm"})
    blob = {"backend": config.backend, "model": config.model.model_dump(mode="json"),
            "train": config.train.model_dump(mode="json"), "tune": tune, "dataset": dataset_uri}
    return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()[:16]


def _pinned(config: Config) -> Config:
    """Paths made absolute: worker processes and resumed runs must find the same files."""
    weights = config.model.weights
    if config.backend == "local" and weights not in ("imagenet", "none") and "://" not in weights:
        weights = str(Path(weights).expanduser().resolve())
    model = config.model.model_copy(update={"weights": weights})
    return config.model_copy(update={"workspace": str(Path(config.workspace).resolve()), "model": model})


def plan(config: Config, ledger: Ledger, *, dataset: str | None = None) -> TunePlan:
    from dogbreed.tuning.strategy import check
    from dogbreed.tuning.study import TuningSetup

    config = _pinned(config)
    build_space(config)  # a range neither backend could search fails here, exit 2
    check(config.tune)
    dataset_uri, manifest = resolve_dataset(config, ledger, dataset)
    if config.backend == "local" and "://" not in dataset_uri:
        dataset_uri = str(Path(dataset_uri).resolve())
    print_ = fingerprint(config, dataset_uri)
    name, previous = config.tune.name, None
    if name:
        try:
            check_name(name, MAX_LEN["tuning-job"])
        except ValueError as exc:
            raise UsageError(f"--name: {exc}") from None
        previous = ledger.get("tuning-job", name, config.backend)
        if previous and previous.meta.get("fingerprint") not in (None, print_):
            raise UsageError(
                f"tuning job {name} searched a different space, model, dataset or objective; "
                "give a new --name, or the same config to resume it"
            )
    else:
        last = ledger.latest("tuning-job", backend=config.backend)
        if last and last.state in RESUMABLE and last.meta.get("fingerprint") == print_:
            name, previous = last.name, last
        else:
            name = unique_name("tune")
    config = config.model_copy(update={"tune": config.tune.model_copy(update={"name": name})})
    setup = TuningSetup(name, config, dataset_uri, manifest or (previous.meta.get("manifest_sha256") if previous else None), print_)
    return TunePlan(setup, resumed=previous is not None, previous_state=previous.state if previous else None)


def example_params(setup: Any) -> dict[str, Any]:
    """The first point the local sampler would try: what --dry-run shows a trial with."""
    import optuna

    from dogbreed.tuning.space import suggest
    from dogbreed.tuning.strategy import make_sampler

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=make_sampler(setup.config.tune, setup.space))
    return suggest(study.ask(), setup.space)


def local_dry_run(tune_plan: TunePlan) -> dict[str, Any]:
    from dogbreed.tuning import strategy
    from dogbreed.tuning.runner import TrialBackend, job_request
    from dogbreed.tuning.space import apply

    setup = tune_plan.setup
    tune = setup.config.tune
    params = example_params(setup)
    first = book.trial_name(setup.name, 0)
    job = TrialBackend(setup.config, setup.workspace).plan_training(job_request(setup, first, apply(setup.config, params)))
    return {
        "dry_run": True,
        "backend": "local",
        "tuning_job": setup.name,
        "resumes": tune_plan.resumed,
        "strategy": tune.strategy,
        **strategy.describe(tune, setup.space, setup.config.train.epochs),
        "objective": tune.objective.model_dump(),
        "max_jobs": setup.budget,
        "max_parallel_jobs": tune.max_parallel_jobs,
        "search_space": describe(setup.space),
        "dataset_uri": setup.dataset_uri,
        "storage": str(Path(setup.config.workspace) / "tuning" / setup.name / "journal.log"),
        "example_trial": {"name": first, "params": params, "command": job["command"], "cwd": job["cwd"]},
    }


def answer(setup: Any, trials: list[book.TrialSummary], state: str, resumed: bool, backend: str = "local") -> dict[str, Any]:
    """DESIGN's tune answer: tuning_job, strategy, trials, best; and the rest people ask for."""
    top = book.best(trials, setup.maximize)
    tune = setup.config.tune
    return {
        "tuning_job": setup.name,
        "backend": backend,
        "state": state,
        "strategy": tune.strategy,
        "objective": tune.objective.model_dump(),
        "max_jobs": setup.budget,
        "resumed": resumed,
        "trials": [
            {"name": t.name, "params": t.params, "objective": t.objective, "status": t.status, "test_acc": t.test_acc,
             "epochs": t.epochs, "failure": t.failure, "retried": t.retried}
            for t in trials
        ],
        "best": {"name": top.name, "params": top.params, "objective": top.objective, "test_acc": top.test_acc} if top else None,
        "search_space": describe(setup.space),
    }


def ledger_meta(setup: Any, trials: list[book.TrialSummary]) -> dict[str, Any]:
    top = book.best(trials, setup.maximize)
    return {
        "strategy": setup.config.tune.strategy,
        "objective": setup.config.tune.objective.model_dump(),
        "best": {"name": top.name, "params": top.params, "objective": top.objective} if top else None,
        "trials": book.finished_count(trials),
        "max_jobs": setup.budget,
        "fingerprint": setup.fingerprint,
        "dataset_uri": setup.dataset_uri,
        "manifest_sha256": setup.manifest_sha256,
    }


class LocalTuning:
    """One local tuning job from start (or resume) to its answer."""

    def __init__(self, tune_plan: TunePlan, ledger: Ledger) -> None:
        from dogbreed.tuning.runner import TrialBackend

        self.plan = tune_plan
        self.setup = tune_plan.setup
        self.ledger = ledger
        self.folder = self.setup.folder
        self.backend = TrialBackend(self.setup.config, self.setup.workspace)
        self._study: Any = None

    @property
    def study(self) -> Any:
        from dogbreed.tuning.study import open_study

        if self._study is None:
            self._study = open_study(self.setup)
        return self._study

    def trials(self) -> list[book.TrialSummary]:
        return book.summarize_all(self.setup.name, self.study.get_trials(deepcopy=False))

    def trial_records(self) -> list[Resource]:
        return self.ledger.list("trial", parent=self.setup.name)

    def begin(self) -> None:
        self.setup.save()
        meta = ledger_meta(self.setup, [])
        if self.ledger.get("tuning-job", self.setup.name, "local") is None:
            self.ledger.record("tuning-job", self.setup.name, "local", uri=str(self.folder), state="InProgress", meta=meta)
        else:
            keep = {k: v for k, v in meta.items() if k not in ("best", "trials")}
            self.ledger.update("tuning-job", self.setup.name, "local", state="InProgress", meta=keep)
        self.study  # noqa: B018 - created before any worker opens it

    def settle(self) -> list[str]:
        """Trials a stopped or killed process left RUNNING; only while no worker runs."""
        from dogbreed.tuning import pool
        from dogbreed.tuning.recovery import recover

        if pool.alive(self.folder):
            return []
        return recover(self.setup, self.study, self.backend, self.ledger)

    def launch(self, detached: bool) -> list[int]:
        """Start workers unless some already run (a --no-wait start, or a killed CLI's)."""
        from dogbreed.tuning import pool

        running = pool.alive(self.folder)
        if running:
            return running
        left = book.budget_left(self.trials(), self.setup.budget)
        if left == 0:
            return []
        procs = pool.spawn(self.folder, min(self.setup.config.tune.max_parallel_jobs, left), detached)
        return [proc.pid for proc in procs]

    def follow(self, show: Callable[[list[Resource]], None]) -> None:
        """Until the budget is spent. Workers that all exit early are replaced while they make
        progress; a round with none is an error worth reading the worker log for."""
        from dogbreed.tuning import pool

        finished_before = book.finished_count(self.trials())
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
            if book.budget_left(trials, self.setup.budget) == 0:
                show(self.trial_records())
                return
            if book.finished_count(trials) == finished_before:
                raise DogbreedError(f"tuning workers stopped without finishing a trial: {self._worker_error()}")
            finished_before = book.finished_count(trials)
            self.launch(detached=False)

    def _worker_error(self) -> str:
        from dogbreed.backends.job_supervisor import last_error

        logs = sorted(self.folder.glob("worker-*.log"))
        return f"{last_error(logs[0])} (see {logs[0]})" if logs else f"no worker log in {self.folder}"

    def run(self, show: Callable[[list[Resource]], None]) -> dict[str, Any]:
        """follow() to the end and the answer. Ctrl-C stops the workers and propagates, unless
        every trial had already finished: a job that completed is not reported interrupted."""
        try:
            self.follow(show)
        except KeyboardInterrupt:
            answer = self.interrupt()
            if answer["state"] == "Stopped":
                raise
            return answer
        return self.finish()

    def interrupt(self) -> dict[str, Any]:
        """Ctrl-C: stop the workers (each stops its job), settle, and leave a resumable job."""
        from dogbreed.tuning import pool

        pool.stop(self.folder)
        self.settle()
        return self.finish()

    def _job_outcome(self, name: str) -> Any:
        """A finished trial's job once its supervisor is done packing model.tar.gz."""
        deadline = time.monotonic() + PACKING_WAIT_SECONDS
        outcome = self.backend.describe_training(name)
        while outcome.state == "InProgress" and time.monotonic() < deadline:
            time.sleep(POLL_SECONDS)
            outcome = self.backend.describe_training(name)
        return outcome

    def finish(self) -> dict[str, Any]:
        from dogbreed.tuning.runner import record

        trials = self.trials()
        for trial in trials:  # the study is the truth; the ledger mirrors it for other commands
            if trial.status == "Completed":
                job = self._job_outcome(trial.name)
                record(self.ledger, self.setup, trial, model_uri=job.model_uri, log_uri=job.log_uri)
            elif trial.status in book.FINISHED:
                record(self.ledger, self.setup, trial)
        state = book.tuning_state(trials, self.setup.budget)
        self.ledger.update("tuning-job", self.setup.name, "local", state=state, meta=ledger_meta(self.setup, trials))
        if state == "Failed":
            first = book.first_failure(trials)
            detail = f"first error ({first.name}): {first.failure}" if first else "no trial completed"
            raise DogbreedError(f"every trial of tuning job {self.setup.name} failed; {detail}")
        return answer(self.setup, trials, state, self.plan.resumed)



def sagemaker_tuning(
    tune_plan: TunePlan, ledger: Ledger, backend: Any, *, dry_run: bool, wait: bool, on_log: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """The same tune.* section as a SageMaker HyperparameterTuner, through the SageMaker
    backend (backends/sagemaker.py builds the tuner from tune.*; aws/tuner.py)."""
    from dogbreed.aws.tuning import TuningRequest

    setup = tune_plan.setup
    request = TuningRequest(setup.name, setup.config, setup.dataset_uri, setup.manifest_sha256)
    if dry_run:
        return {"dry_run": True, **backend.plan_tuning(request), "search_space": describe(setup.space),
                "objective": setup.config.tune.objective.model_dump()}
    if ledger.get("tuning-job", setup.name, "sagemaker") is None:
        ledger.record("tuning-job", setup.name, "sagemaker", state="InProgress", meta=ledger_meta(setup, []))
    backend.start_tuning(request)
    if not wait:
        return {"tuning_job": setup.name, "backend": "sagemaker", "state": "InProgress",
                "strategy": setup.config.tune.strategy, "trials": [], "best": None}
    try:
        result = backend.wait_tuning(setup.name, on_log)
    except KeyboardInterrupt:
        ledger.update("tuning-job", setup.name, "sagemaker", state="Stopped")
        raise
    finished = [t for t in result["trials"] if t["status"] in book.FINISHED]
    ledger.update(
        "tuning-job", setup.name, "sagemaker", state=result["state"],
        meta={"best": result.get("best"), "trials": len(finished)},
    )
    return result
