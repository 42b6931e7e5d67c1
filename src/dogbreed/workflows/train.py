"""`train`: one job of the training package with the config's (or a tuning job's best) params.

Backend-agnostic: the backend runs the job; this module decides what to run, resumes an
interrupted job instead of starting over, and records the job and its model in the ledger.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from dogbreed.backends.base import Backend, LogSink, TrainingOutcome, TrainingRequest
from dogbreed.config import Config, require_path
from dogbreed.config.flags import hyperparameters, with_params
from dogbreed.errors import BusyError, DogbreedError, NotFoundError, UsageError
from dogbreed.ledger import Ledger, Resource
from dogbreed.resource_names import check_name, unique_name

RESUMABLE = ("Stopped", "Failed", "InProgress")


@dataclass(frozen=True)
class TrainPlan:
    request: TrainingRequest
    resumed: bool
    tuned_params: dict[str, Any]
    named: bool = False  # the user gave --name: never swapped for another


def _check_local_dataset(dataset: str) -> None:
    """A --dataset folder that train.py would refuse (missing, or no dataset: neither
    manifest.json nor train/), refused before any job exists: a job would be recorded, started
    and left Failed for it."""
    if "://" in dataset:
        return  # s3:// is the backend's to check (and a local backend refuses it itself)
    folder = Path(dataset).expanduser()
    if not folder.is_dir():
        raise NotFoundError(f"--dataset {dataset}: no such folder; run `dogbreed ingest SOURCE` first, or fix the path")
    if not (folder / "manifest.json").is_file() and not (folder / "train").is_dir():
        raise NotFoundError(
            f"--dataset {dataset}: no dataset there (neither manifest.json nor a train/ folder); "
            f"ingest it first: dogbreed ingest {dataset}"
        )


def resolve_dataset(config: Config, ledger: Ledger, dataset: str | None) -> tuple[str, str | None]:
    """(dataset URI, manifest sha256): the one given, else the latest ingested."""
    if dataset:
        _check_local_dataset(dataset)
        return dataset, None
    latest = ledger.latest("dataset", backend=config.backend) or ledger.latest("dataset")
    if latest is None or not latest.uri:
        raise NotFoundError("no dataset ingested yet: run `dogbreed ingest SOURCE` first (or pass --dataset URI)")
    return latest.uri, latest.meta.get("manifest_sha256")


def best_params(ledger: Ledger, tuning: str) -> dict[str, Any]:
    """The best trial's train.* params of a tuning job ('latest' or a name)."""
    job = ledger.latest("tuning-job") if tuning == "latest" else ledger.get("tuning-job", tuning)
    if job is None:
        if tuning == "latest":
            raise NotFoundError("no tuning job in the ledger; run `dogbreed tune` first")
        raise NotFoundError(
            f"tuning job {tuning!r} not found in the ledger; list jobs with `dogbreed status --all`, or run `dogbreed tune` first"
        )
    best = job.meta.get("best") or {}
    if not best.get("params"):
        raise DogbreedError(f"tuning job {job.name} has no completed trial to take parameters from")
    return dict(best["params"])


def _fingerprint(hps: dict[str, Any], dataset_uri: str) -> str:
    blob = json.dumps({"hps": hps, "dataset": dataset_uri}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _differences(before: dict[str, Any], after: dict[str, Any]) -> str:
    """'epochs 2, not 3': what the job ran with against what was asked, for the refusal."""
    before, after = json.loads(json.dumps(before, default=str)), json.loads(json.dumps(after, default=str))
    changed = [f"{key} {before.get(key)}, not {after.get(key)}" for key in after if before.get(key) != after.get(key)]
    shown = "; ".join(changed[:3]) + (f"; and {len(changed) - 3} more" if len(changed) > 3 else "")
    return f" ({shown})" if shown else ""


def _refuse_other_settings(name: str, before: dict[str, Any], after: dict[str, Any], completed: bool) -> None:
    what = "get its model" if completed else "resume it"
    raise UsageError(
        f"training job {name} exists with other settings{_differences(before, after)}; "
        f"give another --name, or run with the same settings to {what}"
    )


def _check_same_settings(job: Resource, hps: dict[str, Any], dataset_uri: str) -> None:
    """Refuse a --name that a job with other settings holds, before its folder or ledger row is
    touched: running it would overwrite that job's request and log and mark it Failed (its
    checkpoints refuse other arguments only once the job is already started)."""
    known = job.meta.get("fingerprint")
    if known is None or known == _fingerprint(hps, dataset_uri):
        return  # same settings, or a row from before fingerprints: the job's checkpoints decide
    before = {**(job.meta.get("hyperparameters") or {}), "dataset": job.meta.get("dataset_uri")}
    _refuse_other_settings(job.name, before, {**hps, "dataset": dataset_uri}, job.state == "Completed")


def dataset_changed(before: str | None, now: str | None) -> bool:
    """Two manifests of one dataset folder that differ: it was ingested again in between."""
    return bool(before and now and before != now)


def _check_unrecorded_job(backend: Backend, request: TrainingRequest) -> None:
    """The same refusal for a job that the ledger has no row for but the backend still keeps
    (a deleted ledger, a lost row): its own record of its settings decides."""
    found = backend.unrecorded_job(request)
    if found is not None and found[0] != found[1]:
        _refuse_other_settings(request.name, *found, completed=False)


def plan(
    config: Config,
    ledger: Ledger,
    backend: Backend,
    *,
    name: str | None = None,
    dataset: str | None = None,
    from_tuning: str | None = None,
    parent: str | None = None,
) -> TrainPlan:
    name_given = name
    if name:
        check_name(name, what="--name")  # first: a name is a folder, so '../x' must go nowhere
    require_path(config, "model.weights")  # names the file and key that set a missing one
    tuned = best_params(ledger, from_tuning) if from_tuning else {}
    if tuned:
        config = with_params(config, tuned)
    dataset_uri, manifest = resolve_dataset(config, ledger, dataset)
    hps = hyperparameters(config)
    fingerprint = _fingerprint(hps, dataset_uri)
    resumed = unrecorded = False
    if name:
        previous = ledger.get("training-job", name, config.backend)
        if previous is not None:
            _check_same_settings(previous, hps, dataset_uri)
            if previous.state != "Completed" and dataset_changed(previous.meta.get("manifest_sha256"), manifest):
                # Its checkpoints learned the earlier photos: resuming would train on a mix.
                raise UsageError(
                    f"training job {name} began on the dataset in {dataset_uri} before it was ingested again "
                    "(another manifest_sha256 now); give another --name to train on the new photos"
                )
        resumed, unrecorded = previous is not None, previous is None
    else:
        # Ctrl-C, a kill or a crash leaves a job whose checkpoints make `train` again resume it.
        # Only where a job keeps its name and checkpoints (the local backend's job folders).
        last = ledger.latest("training-job", backend=config.backend) if backend.resumes_jobs else None
        if (
            last
            and last.state in RESUMABLE
            and last.meta.get("fingerprint") == fingerprint
            and not dataset_changed(last.meta.get("manifest_sha256"), manifest)
        ):
            name, resumed = last.name, True
        else:
            name = unique_name("train")
    request = TrainingRequest(
        name=name,
        config=config,
        dataset_uri=dataset_uri,
        hyperparameters=hps,
        manifest_sha256=manifest,
        parent=parent or (f"tuning:{from_tuning}" if from_tuning else None),
    )
    if unrecorded:
        _check_unrecorded_job(backend, request)
    return TrainPlan(request=request, resumed=resumed, tuned_params=tuned, named=bool(name_given))


def already_complete(ledger: Ledger, backend: Backend, train_plan: TrainPlan) -> TrainingOutcome | None:
    """The outcome of the job named with --name when it already ran to completion with these
    settings (plan refused other settings): `train` again answers with its model instead of
    training it again and repacking a model that `deploy` may be serving. None otherwise."""
    request = train_plan.request
    job = ledger.get("training-job", request.name, backend.name) if train_plan.named else None
    if job is None or job.state != "Completed" or not job.meta.get("model_uri"):
        return None
    try:
        outcome = backend.describe_training(request.name)
    except NotFoundError:
        return None  # its folder is gone: training it again is all there is to do
    return outcome if outcome.state == "Completed" and outcome.model_uri else None


def record_outcome(ledger: Ledger, backend: Backend, name: str, outcome: TrainingOutcome) -> None:
    """How a job ended, and its model when it completed: where `deploy` finds "the latest"."""
    state = outcome.state
    ledger.update(
        "training-job",
        name,
        backend.name,
        state=state,
        uri=outcome.output_uri,
        meta={
            "metrics": outcome.metrics,
            "model_uri": outcome.model_uri,
            "failure": outcome.failure,
            "output_uri": outcome.output_uri,
            "log_uri": outcome.log_uri,
        },
    )
    if state == "Completed" and outcome.model_uri:
        ledger.record(
            "model",
            name,
            backend.name,
            uri=outcome.model_uri,
            state="created",
            parent=name,
            meta={"training_job": name, "metrics": outcome.metrics},
        )


def _unsettled(job: Resource) -> bool:
    """Still running as far as the ledger knows, or marked Completed by something that did not
    record its outcome (no model_uri in its meta: a plain state change, e.g. an older status)."""
    return job.state == "InProgress" or (job.state == "Completed" and "model_uri" not in job.meta)


def sync(ledger: Ledger, backend: Backend) -> list[TrainingOutcome]:
    """Record the outcome of jobs that ended while no CLI was waiting (`--no-wait`, a killed
    CLI), so 'the latest model' is found by later commands. Returns the outcomes it recorded."""
    recorded = []
    for job in ledger.list("training-job", backend=backend.name, states=["InProgress", "Completed"]):
        if not _unsettled(job):
            continue
        try:
            outcome = backend.describe_training(job.name)
        except NotFoundError:
            if job.state == "InProgress":
                ledger.update("training-job", job.name, backend.name, state="Failed", meta={"failure": "job not found"})
            continue
        if outcome.state != "InProgress":
            record_outcome(ledger, backend, job.name, outcome)
            recorded.append(outcome)
    return recorded


def start(ledger: Ledger, backend: Backend, train_plan: TrainPlan) -> TrainPlan:
    """Record the job (intent first), then start it; the plan that runs. A job this command
    picked by itself (a resume of the latest) that another process is already running is
    left to it: this command starts a fresh job instead. A job named with --name is refused."""
    try:
        _start(ledger, backend, train_plan)
        return train_plan
    except BusyError as exc:
        if train_plan.named:
            raise BusyError(f"{exc}; wait for it (dogbreed status), stop it, or give another --name") from None
    fresh = replace(train_plan, request=replace(train_plan.request, name=unique_name("train")), resumed=False)
    _start(ledger, backend, fresh)
    return fresh


def _start(ledger: Ledger, backend: Backend, train_plan: TrainPlan) -> None:
    request = train_plan.request
    ledger.record(
        "training-job",
        request.name,
        backend.name,
        uri=None,
        state="InProgress",
        parent=request.parent,
        meta={
            "hyperparameters": request.hyperparameters,
            "dataset_uri": request.dataset_uri,
            "manifest_sha256": request.manifest_sha256,
            "fingerprint": _fingerprint(request.hyperparameters, request.dataset_uri),
            "tuned_params": train_plan.tuned_params,
        },
    )
    backend.start_training(request)


def wait(ledger: Ledger, backend: Backend, request: TrainingRequest, on_log: LogSink | None = None) -> TrainingOutcome:
    try:
        outcome = backend.wait_training(request.name, on_log)
    except KeyboardInterrupt:
        ledger.update("training-job", request.name, backend.name, state="Stopped")
        raise
    record_outcome(ledger, backend, request.name, outcome)
    return outcome


def evaluation(ledger: Ledger, backend: Backend, name: str, dest: Path) -> dict[str, Any] | None:
    """The job's evaluation.json (what it gets wrong on the test split), read where the job
    left it: its local job folder, or its output.tar.gz on S3 (downloaded into dest, where
    `report` finds it again). None when the job wrote none."""
    from dogbreed.workflows.report import training_evaluation

    job = ledger.get("training-job", name, backend.name)
    return training_evaluation(job, dest, backend) if job is not None else None


def answer(
    train_plan: TrainPlan, outcome: TrainingOutcome, backend: str, evaluation: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        **outcome.to_json(),
        "backend": backend,
        "resumed": train_plan.resumed,
        "dataset_uri": train_plan.request.dataset_uri,
        "hyperparameters": train_plan.request.hyperparameters,
        "tuned_params": train_plan.tuned_params,
        "evaluation": evaluation,
    }
