"""Where things go on S3 and what the resources SageMaker makes for us are called.

s3://<bucket>/<prefix>/
    code/<sha>/sourcedir.tar.gz     the training package, content-addressed (aws/staging.py)
    files/<sha>/<name>              local files a job or model needs (weights, model.tar.gz)
    jobs/<job>/output/model.tar.gz  SageMaker's own layout under the output path
    jobs/<job>/debug-output, rule-output, profiler-output   (Debugger/Profiler)
    checkpoints/<job>/              spot checkpoints (/opt/ml/checkpoints is synced here)
    transform/<job>/input/          local photos a Batch Transform job scores
    transform/<job>/output/         its answers, <input name>.out (aws/transform.py)
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone

from dogbreed.errors import UsageError
from dogbreed.resource_names import check_name

MODEL_PREFIX_MAX = 38  # '-model-YYMMDD-HHMMSS-abcd' adds 25 characters: 63 in all


def output_path(s3_root: str) -> str:
    return f"{s3_root}/jobs/"


def checkpoint_uri(s3_root: str, job: str) -> str:
    return f"{s3_root}/checkpoints/{job}/"


def transform_input_uri(s3_root: str, job: str) -> str:
    return f"{s3_root}/transform/{job}/input/"


def transform_output_uri(s3_root: str, job: str) -> str:
    return f"{s3_root}/transform/{job}/output/"


def _deploy_name(endpoint: str, what: str, model_uri: str, expires_at: datetime) -> str:
    digest = hashlib.sha256(model_uri.encode()).hexdigest()[:4]
    prefix = endpoint[: MODEL_PREFIX_MAX + len("model") - len(what)].rstrip("-")
    return check_name(f"{prefix}-{what}-{expires_at.astimezone(timezone.utc):%y%m%d-%H%M%S}-{digest}")


def endpoint_config_name(endpoint: str, model_uri: str, expires_at: datetime) -> str:
    """'dogbreed-config-261127-221500-9f3a': the endpoint config a redeploy switches the
    endpoint to (a first deploy names its config after the endpoint); named like the model,
    so both say which deploy made them."""
    return _deploy_name(endpoint, "config", model_uri, expires_at)


def model_name(endpoint: str, model_uri: str, expires_at: datetime) -> str:
    """'dogbreed-model-261127-221500-9f3a': the endpoint's name, when the deploy's TTL ends and
    which artifact, so one deploy request always names its model the same (its dry run shows
    the very name) and two deploys never collide."""
    return _deploy_name(endpoint, "model", model_uri, expires_at)


def tuning_job_name(name: str) -> str:
    """Tuning job names have at most 32 characters (the SDK would cut longer ones, and
    cut names collide)."""
    try:
        return check_name(name, 32)
    except ValueError as exc:
        raise UsageError(f"tuning job name: {exc}") from None
