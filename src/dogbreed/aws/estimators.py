"""The PyTorch estimator of a training job (or of every tuning trial), built from the config.

Pure: config and locations in, an SDK object out; nothing is sent until the caller calls
`fit` on a session whose client records or forwards (aws/requests.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dogbreed.aws import sagemaker_names
from dogbreed.aws.debugger import debugger_hyperparameters, debugger_refusal, debugger_settings
from dogbreed.aws.session import import_sdk
from dogbreed.config import Config
from dogbreed.config.flags import format_value, hyperparameters
from dogbreed.config.schema import parse_duration
from dogbreed.errors import ConfigError, DogbreedError
from dogbreed.jobspec import ENTRY_POINT, TRAINING_CHANNEL, metric_spec, weights_channel


@dataclass(frozen=True)
class JobInputs:
    """The channels of a job and the hyperparameters that depend on them."""

    channels: dict[str, str]  # channel name -> s3:// URI
    hyperparameters: dict[str, Any]  # flag -> value, as the estimator takes them
    staged: list[Any] = field(default_factory=list)  # StagedObjects a real run must upload first


def job_hyperparameters(config: Config, base: dict[str, Any] | None = None) -> dict[str, Any]:
    """train.py's flags, so that its argv is the one the local backend builds.

    The SDK JSON-encodes each value and the training toolkit decodes it and calls str() on it
    (sagemaker_training/mapping.py, to_cmd_args): numbers and strings come out as the local
    backend writes them, but a Python True would arrive as 'True', so booleans go as the
    strings 'true'/'false' (config.flags.format_value)."""
    values = dict(base if base is not None else hyperparameters(config))
    values.update(debugger_hyperparameters(config.sagemaker))
    return {flag: format_value(value) if isinstance(value, bool) else value for flag, value in values.items()}


def job_inputs(config: Config, dataset_uri: str, s3_root: str, base_hyperparameters: dict[str, Any] | None = None) -> JobInputs:
    """Channels: the dataset ('training') and, for a weights file, a 'weights' channel with the
    file's name as --weights (the local backend does the same with a folder)."""
    from dogbreed.aws.staging import local_file

    if not dataset_uri.startswith("s3://"):
        raise DogbreedError(
            f"dataset {dataset_uri} is not on S3, but the backend is sagemaker; "
            "ingest it there (dogbreed ingest SOURCE --dest s3://BUCKET/PREFIX) or pass --dataset s3://..."
        )
    staged = []

    def on_s3(weights: str) -> tuple[str, str]:
        uri = weights
        if not weights.startswith("s3://"):
            file = local_file(s3_root, Path(weights).expanduser().resolve())
            staged.append(file)
            uri = file.uri
        return uri, uri.rstrip("/").rsplit("/", 1)[-1]

    weights, hps = weights_channel(job_hyperparameters(config, base_hyperparameters), on_s3)
    return JobInputs({TRAINING_CHANNEL: dataset_uri, **weights}, hps, staged)


def build_estimator(
    config: Config,
    session: Any,
    *,
    role: str,
    code_uri: str,
    s3_root: str,
    hyperparameters: dict[str, Any],
    tags: list[dict[str, str]],
    instance_type: str,
    checkpoint_job: str | None = None,
) -> Any:
    """A sagemaker.pytorch.PyTorch estimator for train.py.

    checkpoint_job: the job whose S3 checkpoint folder spot training syncs with; None for
    tuning trials (one static URI would be shared by every trial, and a trial would resume
    another trial's checkpoint)."""
    import_sdk()
    from sagemaker.pytorch import PyTorch

    sm = config.sagemaker
    refused = debugger_refusal(sm)
    if refused:
        raise ConfigError(refused)  # dry run, pre-flight and the real call alike: nothing is sent
    out = sagemaker_names.output_path(s3_root)
    kwargs: dict[str, Any] = {
        "entry_point": ENTRY_POINT,
        "source_dir": code_uri,
        "framework_version": sm.framework_version,
        "py_version": sm.py_version,
        "role": role,
        "instance_type": instance_type,
        "instance_count": sm.instance_count,
        "volume_size": sm.volume_size_gb,
        "max_run": int(parse_duration(sm.max_run).total_seconds()),
        "hyperparameters": hyperparameters,
        "metric_definitions": metric_spec().metric_definitions(),
        "output_path": out,
        "code_location": out,
        "tags": tags,
        "sagemaker_session": session,
        **debugger_settings(sm, out),
    }
    if sm.network_isolation:
        # No internet in the job: the SDK then passes source_dir as a 'code' channel.
        kwargs["enable_network_isolation"] = True
    if sm.instance_count > 1:
        kwargs["distribution"] = {"torch_distributed": {"enabled": True}}
    if sm.spot:
        kwargs["use_spot_instances"] = True
        kwargs["max_wait"] = int(parse_duration(sm.max_wait).total_seconds())
        if kwargs["max_wait"] < kwargs["max_run"]:
            raise ConfigError(f"sagemaker.max_wait ({sm.max_wait}) must be at least sagemaker.max_run ({sm.max_run}) with spot")
        if checkpoint_job is not None:
            kwargs["checkpoint_s3_uri"] = sagemaker_names.checkpoint_uri(s3_root, checkpoint_job)
    try:
        return PyTorch(**kwargs)
    except ValueError as exc:
        # e.g. torch_distributed on a CPU instance, or a version without an image.
        raise ConfigError(f"sagemaker: the SDK refused the training job: {' '.join(str(exc).split())}") from None
