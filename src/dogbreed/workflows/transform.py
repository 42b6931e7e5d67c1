"""transform: score a folder, a glob or an s3:// prefix with a trained model and no endpoint.

Backend-agnostic: this step lists the local sources (as `predict` does: files, folders
searched recursively, globs), leaves s3:// prefixes to the backend, finds the model ("latest"
is the newest model the ledger knows, as for deploy), and names the job. The backend scores:
in this process (local) or in a SageMaker Batch Transform job, which ends by itself, so
nothing bills after it. A job that bills is recorded in the ledger as soon as it exists
(state InProgress), so `status` lists it and `teardown` stops it, then with how it ended.

The scores file (serving/scores_file.py) gets one row per image, in the order scored; a
rerun with the same output skips the images already there, so a killed run resumes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dogbreed.backends.base import Backend, TransformOutcome, TransformRequest
from dogbreed.config import Config
from dogbreed.errors import DogbreedError, UsageError
from dogbreed.ledger import Ledger
from dogbreed.resource_names import check_name, unique_name
from dogbreed.serving.batch import BatchImage
from dogbreed.serving.scores_file import format_of, writing
from dogbreed.serving.upload import prepare
from dogbreed.workflows.deploy import resolve_model
from dogbreed.workflows.predict import expand_images
from dogbreed.workflows.train import sync as sync_training

KIND = "transform-job"
MB = 2**20  # transform.max_payload_mb is in MiB, as SageMaker's MaxPayloadInMB (6 of them: predict's limit)


@dataclass
class TransformResult:
    outcome: TransformOutcome | None = None
    plan: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        if self.plan is not None:
            keys = ("transform_job", "backend", "model_uri", "output", "est_cost")
            return {"dry_run": True, **{key: self.plan.get(key) for key in keys}, "plan": self.plan}
        assert self.outcome is not None
        return self.outcome.to_json()


def _refused(error: str):
    def read() -> bytes:
        raise DogbreedError(error)

    return read


def local_images(sources: Sequence[str], max_bytes: int, max_payload: int) -> list[BatchImage]:
    """The images of local sources, each keyed by its size and modification time; an
    argument that is no image (missing, a FIFO, an empty folder) is an image whose reading
    fails, so it gets its error row like any other. Reading one gives the body `predict`
    would send for it (serving/upload.py: shrunk to max_payload bytes and the handler's
    pixels when larger), so both score the same bytes; what cannot be shrunk fails its read."""
    paths, errors = expand_images(sources)
    found = []
    for path in paths:
        try:
            stat = path.stat()
            key = f"size={stat.st_size};mtime_ns={stat.st_mtime_ns}"
        except OSError as exc:
            found.append(BatchImage(str(path), "", _refused(exc.strerror or str(exc)), path))
            continue
        read = lambda path=path: prepare(path, max_payload, max_bytes).body  # noqa: E731
        found.append(BatchImage(str(path), key, read, path))
    found += [BatchImage(row["image"], "", _refused(row["error"])) for row in errors]
    return found


def build_request(
    config: Config,
    ledger: Ledger,
    sources: Sequence[str],
    output: Path,
    *,
    model: str | None = "latest",
    fmt: str | None = None,
    top_k: int | None = None,
    name: str | None = None,
    restart: bool = False,
    trust_code: bool = False,
) -> TransformRequest:
    if not sources:
        raise UsageError("give the images to score: files, folders, globs or s3:// prefixes")
    model_uri, training_job = resolve_model(ledger, model)
    prefixes = tuple(dict.fromkeys(source for source in sources if source.startswith("s3://")))
    local = [source for source in sources if not source.startswith("s3://")]
    return TransformRequest(
        name=check_name(name, what="--name") if name else unique_name("transform"),
        config=config,
        model_uri=model_uri,
        output=output,
        format=format_of(output, fmt),
        top_k=top_k or config.deploy.top_k,
        images=tuple(local_images(local, config.data.max_image_bytes, config.transform.max_payload_mb * MB)) if local else (),
        prefixes=prefixes,
        restart=restart,
        training_job=training_job,
        trust_code=trust_code,
    )


def _record(ledger: Ledger, backend: Backend, request: TransformRequest, outcome: TransformOutcome) -> None:
    ledger.record(
        KIND,
        outcome.name,
        backend.name,
        uri=outcome.extra.get("arn") or outcome.output_uri,
        state=outcome.state,
        parent=request.training_job,
        meta={
            "model_uri": request.model_uri,
            "output": str(request.output),
            "input_uri": outcome.input_uri,
            "output_uri": outcome.output_uri,
            "instance_type": outcome.instance_type,
            "instance_count": outcome.instance_count,
            "failure": outcome.failure,
            **{key: value for key, value in outcome.extra.items() if key in ("model", "arn")},
        },
    )


def transform(
    config: Config,
    backend: Backend,
    ledger: Ledger,
    sources: Sequence[str],
    output: Path,
    *,
    model: str | None = "latest",
    fmt: str | None = None,
    top_k: int | None = None,
    name: str | None = None,
    restart: bool = False,
    wait: bool = True,
    dry_run: bool = False,
    trust_code: bool = False,
) -> TransformResult:
    if not dry_run and (not model or model == "latest"):
        sync_training(ledger, backend)  # a job trained with --no-wait may have finished since
    request = build_request(
        config,
        ledger,
        sources,
        output,
        model=model,
        fmt=fmt,
        top_k=top_k,
        name=name,
        restart=restart,
        trust_code=trust_code,
    )
    if dry_run:
        return TransformResult(plan=backend.plan_transform(request))
    recorded: list[TransformOutcome] = []

    def created(outcome: TransformOutcome) -> None:
        _record(ledger, backend, request, outcome)
        recorded.append(outcome)

    try:
        with writing(request.output):
            outcome = backend.transform(request, wait=wait, on_created=created)
    except BaseException:
        if recorded:  # what the job is now, if it can be seen (Ctrl-C stopped it, or it failed)
            try:
                _record(ledger, backend, request, backend.describe_transform(request.name))
            except Exception:  # noqa: BLE001 - the transform's own error is the one to report
                pass
        raise
    if recorded:
        _record(ledger, backend, request, outcome)
    return TransformResult(outcome=outcome)
