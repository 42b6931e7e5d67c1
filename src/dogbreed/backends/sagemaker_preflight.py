"""The SageMaker pre-flight's rehearsal: before anything billable, train.py runs one batch per
split on this machine (the local backend's runner, `--max-batches 1`) with the very flags the
job will get, on a few files of the dataset, and every metric regex the job will be judged by
must match that run's output. The checks that only ask AWS are in aws/preflight.py.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from dogbreed.aws.client_errors import code_of
from dogbreed.aws.preflight import MissingManifest, local_weights, read_manifest, rehearsal_dataset, unmatched_metrics
from dogbreed.aws.session import AwsSession
from dogbreed.backends.base import TrainingOutcome, TrainingRequest
from dogbreed.config import Config
from dogbreed.errors import DogbreedError
from dogbreed.progress import Reporter
from dogbreed.workspace import Workspace

# Runs a TrainingRequest to its end locally; the default is the local backend's runner.
Rehearse = Callable[[TrainingRequest], TrainingOutcome]


def local_rehearsal(config: Config, workspace: Workspace, reporter: Reporter) -> Rehearse:
    """The local backend's runner (train.py as a subprocess with the SM_* environment)."""
    from dogbreed.backends.local_training import LocalTraining

    runner = LocalTraining(config, workspace, reporter)

    def run(request: TrainingRequest) -> TrainingOutcome:
        runner.start_training(request)
        return runner.wait_training(request.name)

    return run


def rehearse_training(
    config: Config,
    aws: AwsSession,
    workspace: Workspace,
    request: TrainingRequest,
    hyperparameters: dict[str, Any],
    rehearse: Rehearse,
    warn: Callable[[str], None] | None = None,
) -> list[str]:
    """Run train.py for one batch with the job's flags; problems if it fails or a regex misses.

    `hyperparameters`: the job's flags, weights still as configured (a path or s3:// URI,
    not yet the channel's file name)."""
    from botocore.exceptions import BotoCoreError, ClientError

    flags = dict(hyperparameters)
    try:
        manifest = read_manifest(aws, request.dataset_uri)
    except MissingManifest as exc:
        # train.py scans folders without one, so the job can run; the photos are unchecked
        # and there is nothing to pick a rehearsal's few files from.
        (warn or (lambda _: None))(f"{exc}; train.py will scan the folders; no rehearsal")
        return []
    except DogbreedError as exc:
        return [str(exc)]
    try:
        weights = str(flags.get("weights", "none"))
        if weights not in ("imagenet", "none"):
            flags["weights"] = str(local_weights(aws, workspace, weights))
        batch = int(flags.get("batch-size", config.train.batch_size))
        key = (manifest.get("manifest_sha256") or "dataset")[:16]
        data = rehearsal_dataset(aws, request.dataset_uri, manifest, batch, workspace.cache("preflight") / key)
    except DogbreedError as exc:
        return [str(exc)]
    except (BotoCoreError, ClientError) as exc:
        return [f"cannot fetch a few files of {request.dataset_uri} for the rehearsal ({code_of(exc) or exc})"]
    name = f"{request.name[:50]}-preflight"
    shutil.rmtree(workspace.root / "jobs" / name, ignore_errors=True)  # no resuming an old rehearsal
    local = replace(request, name=name, dataset_uri=str(data), hyperparameters=flags, max_batches=1)
    outcome = rehearse(local)
    if outcome.state != "Completed":
        return [f"train.py failed its one-batch rehearsal ({outcome.failure or outcome.state}); log: {outcome.log_uri}"]
    text = Path(outcome.log_uri).read_text(errors="replace") if outcome.log_uri else ""
    missing = unmatched_metrics(text)
    if missing:
        return [f"metric regexes for {', '.join(missing)} matched nothing train.py printed; log: {outcome.log_uri}"]
    return []
