"""`tune`: one `tune.*` section searched by the backend's tuner (Optuna over local jobs, or a
SageMaker HyperparameterTuner), through the same Backend protocol as `train`.

plan() decides which tuning job this is (a new one, or the one to resume: same --name, or
the latest unfinished job with the same search when no name is given) and checks the
search space before anything runs. start() and wait() record the job in the ledger, where
`train --from-tuning` finds the best trial's params; the backend runs the search.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dogbreed.backends.base import Backend, TrialsSink, TuningFailed, TuningRequest, TuningStarted
from dogbreed.config import Config, require_path
from dogbreed.errors import BusyError, DogbreedError, UsageError
from dogbreed.jobspec import BUILTIN_WEIGHTS
from dogbreed.ledger import Ledger
from dogbreed.resource_names import MAX_LEN, check_name, unique_name
from dogbreed.tuning.space import SearchParam, build_space, check_search, describe, trial_budget
from dogbreed.workflows.train import dataset_changed, resolve_dataset

RESUMABLE = ("InProgress", "Stopped")
FINISHED = ("Completed", "Stopped", "Failed")
BEST_KEYS = ("name", "params", "objective")  # what the ledger keeps of the best trial


@dataclass(frozen=True)
class TunePlan:
    request: TuningRequest
    space: list[SearchParam]
    budget: int  # trials the search runs: max_jobs, or the whole grid

    @property
    def resumed(self) -> bool:
        return self.request.resumed


def fingerprint(config: Config, dataset_uri: str) -> str:
    """What makes two runs the same search. max_jobs and max_parallel_jobs are left out, so
    `tune --name X --set tune.max_jobs=20` extends a finished study; prewarm is how trials
    start, not what they train."""
    tune = config.tune.model_dump(mode="json", exclude={"name", "max_jobs", "max_parallel_jobs", "prewarm"})
    blob = {
        "backend": config.backend,
        "model": config.model.model_dump(mode="json"),
        "train": config.train.model_dump(mode="json"),
        "tune": tune,
        "dataset": dataset_uri,
    }
    return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()[:16]


def _pinned(config: Config, runs_here: bool) -> Config:
    """Paths made absolute: worker processes and resumed runs must find the same files."""
    weights = config.model.weights
    if runs_here and weights not in BUILTIN_WEIGHTS and "://" not in weights:
        weights = str(Path(weights).expanduser().resolve())
    model = config.model.model_copy(update={"weights": weights})
    return config.model_copy(update={"workspace": str(Path(config.workspace).resolve()), "model": model})


def plan(config: Config, ledger: Ledger, backend: Backend, *, dataset: str | None = None) -> TunePlan:
    if config.tune.name:
        check_name(config.tune.name, MAX_LEN["tuning-job"], what="--name")  # first: a name is a folder
    require_path(config, "model.weights")  # names the file and key that set a missing one
    config = _pinned(config, backend.runs_here)
    space = build_space(config)  # a range neither backend could search fails here, exit 2
    check_search(config.tune)
    dataset_uri, manifest = resolve_dataset(config, ledger, dataset)
    if backend.runs_here and "://" not in dataset_uri:
        dataset_uri = str(Path(dataset_uri).resolve())
    search_key = fingerprint(config, dataset_uri)
    name, previous = config.tune.name, None
    if name:
        previous = ledger.get("tuning-job", name, config.backend)
        if previous and previous.meta.get("fingerprint") not in (None, search_key):
            raise UsageError(
                f"tuning job {name} searched a different space, model, dataset or objective; "
                "give a new --name, or the same config to resume it"
            )
        if previous and dataset_changed(previous.meta.get("manifest_sha256"), manifest):
            # Same folder, other photos: its trials so far and the ones to come would not compare.
            raise UsageError(
                f"tuning job {name} searched the dataset in {dataset_uri} as it was before it was ingested again "
                f"(manifest_sha256 {str(previous.meta['manifest_sha256'])[:12]}..., now {str(manifest)[:12]}...); "
                "give a new --name to search the new one"
            )
    else:
        last = ledger.latest("tuning-job", backend=config.backend)
        if (
            last
            and last.state in RESUMABLE
            and last.meta.get("fingerprint") == search_key
            and not dataset_changed(last.meta.get("manifest_sha256"), manifest)
        ):
            name, previous = last.name, last
        else:
            name = unique_name("tune")
    config = config.model_copy(update={"tune": config.tune.model_copy(update={"name": name})})
    if manifest is None and previous is not None:
        manifest = previous.meta.get("manifest_sha256")
    request = TuningRequest(name, config, dataset_uri, manifest, search_key, resumed=previous is not None)
    return TunePlan(request, space, trial_budget(config.tune, space))


def dry_run(backend: Backend, tune_plan: TunePlan) -> dict[str, Any]:
    """The backend's plan of the search (engine, first trial or exact request, cost)."""
    config = tune_plan.request.config
    return {
        "dry_run": True,
        **backend.plan_tuning(tune_plan.request),
        "objective": config.tune.objective.model_dump(),
        "search_space": describe(tune_plan.space),
    }


def _meta(tune_plan: TunePlan) -> dict[str, Any]:
    request = tune_plan.request
    return {
        "strategy": request.config.tune.strategy,
        "objective": request.config.tune.objective.model_dump(),
        "best": None,
        "trials": 0,
        "max_jobs": tune_plan.budget,
        "fingerprint": request.fingerprint,
        "dataset_uri": request.dataset_uri,
        "manifest_sha256": request.manifest_sha256,
    }


def start(ledger: Ledger, backend: Backend, tune_plan: TunePlan, wait: bool = True) -> TuningStarted:
    """Record the job (intent first), then start it. A resumed job keeps its best so far.
    BusyError when another `tune` process runs this job (the local backend's job lock)."""
    request = tune_plan.request
    meta = _meta(tune_plan)
    before = ledger.get("tuning-job", request.name, backend.name)
    if before is None:
        ledger.record("tuning-job", request.name, backend.name, state="InProgress", meta=meta)
    else:
        keep = {key: value for key, value in meta.items() if key not in ("best", "trials")}
        ledger.update("tuning-job", request.name, backend.name, state="InProgress", meta=keep)
    try:
        started = backend.start_tuning(request, wait=wait)
    except BusyError as exc:  # another `tune` runs this job: its row above says the same
        raise BusyError(
            f"{exc}; wait for it to end (dogbreed status), stop it, or give another --name to start a new search"
        ) from None
    except DogbreedError:
        # Nothing started (a damaged study, say): the row must not claim a search in progress.
        state = before.state if before is not None and before.state != "InProgress" else "Failed"
        ledger.update("tuning-job", request.name, backend.name, state=state)
        raise
    if started.uri:
        ledger.update("tuning-job", request.name, backend.name, uri=started.uri)
    return started


def started_answer(backend: Backend, tune_plan: TunePlan, started: TuningStarted) -> dict[str, Any]:
    """The answer of `tune --no-wait`: the job runs on; `tune --name NAME` follows it."""
    request = tune_plan.request
    return {
        "tuning_job": request.name,
        "backend": backend.name,
        "state": "InProgress",
        "strategy": request.config.tune.strategy,
        **started.extra,
        "trials": [],
        "best": None,
    }


def _record_outcome(ledger: Ledger, backend: Backend, name: str, answer: dict[str, Any]) -> None:
    meta: dict[str, Any] = {}
    if "trials" in answer:
        trials = answer["trials"]
        meta["trials"] = sum(1 for t in trials if t["status"] in FINISHED and not t.get("retried"))
        best = answer.get("best")
        meta["best"] = {key: best[key] for key in BEST_KEYS} if best else None
    ledger.update("tuning-job", name, backend.name, state=answer["state"], meta=meta)


def wait(ledger: Ledger, backend: Backend, tune_plan: TunePlan, on_trials: TrialsSink | None = None) -> dict[str, Any]:
    """Follow the search to its end and record how it ended (also when it failed or Ctrl-C
    stopped it: a stopped job resumes with `tune` again)."""
    name = tune_plan.request.name
    try:
        answer = backend.wait_tuning(tune_plan.request, on_trials)
    except TuningFailed as failed:
        _record_outcome(ledger, backend, name, failed.answer)
        raise
    except KeyboardInterrupt as stopped:
        _record_outcome(ledger, backend, name, getattr(stopped, "answer", {"state": "Stopped"}))
        raise
    _record_outcome(ledger, backend, name, answer)
    return answer
