"""Where things go on S3 and what the resources SageMaker makes for us are called.

s3://<bucket>/<prefix>/
    code/<sha>/sourcedir.tar.gz     the training package, content-addressed (aws/staging.py)
    files/<sha>/<name>              local files a job or model needs (weights, model.tar.gz)
    jobs/<job>/output/model.tar.gz  SageMaker's own layout under the output path
    jobs/<job>/debug-output, rule-output, profiler-output   (Debugger/Profiler)
    checkpoints/<job>/              spot checkpoints (/opt/ml/checkpoints is synced here)
"""

from __future__ import annotations

from dogbreed.errors import UsageError
from dogbreed.naming import check_name, unique_name

MODEL_PREFIX_MAX = 38  # unique_name adds '-model-YYMMDD-HHMMSS-abcd' (25 characters) -> 63


def output_path(s3_root: str) -> str:
    return f"{s3_root}/jobs/"


def checkpoint_uri(s3_root: str, job: str) -> str:
    return f"{s3_root}/checkpoints/{job}/"


def model_name(endpoint: str) -> str:
    """A new model name per deploy, readable as the endpoint's: 'dogbreed-model-2611...'."""
    return unique_name("model", prefix=endpoint[:MODEL_PREFIX_MAX].rstrip("-"))


def tuning_job_name(name: str) -> str:
    """Tuning job names have at most 32 characters (the SDK would cut longer ones, and
    cut names collide)."""
    try:
        return check_name(name, 32)
    except ValueError as exc:
        raise UsageError(f"tuning job name: {exc}") from None
