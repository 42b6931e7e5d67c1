"""SageMaker Batch Transform: the CreateTransformJob request, its price, following it, and
reading its answers back.

A transform job starts instances with the model's inference container, sends every object
under the input prefix to `/invocations` (one image per request: SplitType None,
BatchStrategy SingleRecord), writes each answer beside the input's name as `<name>.out`
under the output path, and then stops its instances by itself: nothing bills afterwards,
unlike an endpoint. The model is the one deploy creates from the same model.tar.gz (no
repacking; aws/models.py), so a transform answers what an endpoint would.

s3://<bucket>/<prefix>/transform/<job>/input/    local images, uploaded for the job
s3://<bucket>/<prefix>/transform/<job>/output/   the job's answers (<input name>.out)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from dogbreed.aws import pricing
from dogbreed.config import Config
from dogbreed.progress import PROGRESS_INTERVAL_S, ProgressLines

DONE = ("Completed", "Failed", "Stopped")
# What every transform request is sent as: raw image bytes (inference.py tells JPEG from PNG
# itself), and the answer as the endpoint's JSON ({"predictions": [...]}, deploy.top_k breeds).
CONTENT_TYPE = "application/x-image"
ACCEPT = "application/json"
INVOCATION_TIMEOUT_S = 60  # the endpoint contract's limit per invocation
OUTPUT_SUFFIX = ".out"


def job_root(s3_root: str, job: str) -> str:
    return f"{s3_root}/transform/{job}"


def input_uri(s3_root: str, job: str) -> str:
    return f"{job_root(s3_root, job)}/input/"


def output_uri(s3_root: str, job: str) -> str:
    return f"{job_root(s3_root, job)}/output/"


def as_prefix(uri: str) -> str:
    """'s3://b/photos' -> 's3://b/photos/': S3Prefix matches keys by prefix, and without the
    slash s3://b/photos would also take s3://b/photos-old/."""
    return uri if uri.endswith("/") else uri + "/"


def transform_job_request(
    config: Config, *, name: str, model_name: str, input_uri: str, output_uri: str, tags: list[dict[str, str]]
) -> dict[str, Any]:
    """The exact CreateTransformJob request."""
    settings = config.transform
    request: dict[str, Any] = {
        "TransformJobName": name,
        "ModelName": model_name,
        "BatchStrategy": "SingleRecord",
        "MaxPayloadInMB": settings.max_payload_mb,
        "ModelClientConfig": {"InvocationsTimeoutInSeconds": INVOCATION_TIMEOUT_S, "InvocationsMaxRetries": 1},
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": input_uri}},
            "ContentType": CONTENT_TYPE,
            "CompressionType": "None",
            "SplitType": "None",
        },
        "TransformOutput": {"S3OutputPath": output_uri, "Accept": ACCEPT, "AssembleWith": "None"},
        "TransformResources": {"InstanceType": settings.instance_type, "InstanceCount": settings.instance_count},
        "Tags": tags,
    }
    if settings.max_concurrent_transforms is not None:
        request["MaxConcurrentTransforms"] = settings.max_concurrent_transforms
    return request


def estimate(config: Config) -> dict[str, Any]:
    """USD of one job: instances x $/hour x transform.expected_hours (billed only while it runs)."""
    settings = config.transform
    per_hour = pricing.hourly(config, settings.instance_type, settings.instance_count)
    answer: dict[str, Any] = {
        "instance_type": settings.instance_type,
        "instance_count": settings.instance_count,
        "expected_hours": settings.expected_hours,
        "usd_per_hour": per_hour,
        "estimated_usd": None if per_hour is None else round(per_hour * settings.expected_hours, 4),
        "note": "billed only while the job runs; it stops by itself",
    }
    if per_hour is None:
        answer["note"] = f"no price for {settings.instance_type} in sagemaker.prices; add one to estimate"
    return answer


def state_of(describe: dict[str, Any]) -> str:
    return describe.get("TransformJobStatus", "gone")


def described(describe: dict[str, Any]) -> dict[str, Any]:
    """What DescribeTransformJob says, as TransformOutcome's fields (backends/base.py)."""
    resources = describe.get("TransformResources", {})
    return {
        "state": state_of(describe),
        "input_uri": describe.get("TransformInput", {}).get("DataSource", {}).get("S3DataSource", {}).get("S3Uri"),
        "output_uri": describe.get("TransformOutput", {}).get("S3OutputPath"),
        "instance_type": resources.get("InstanceType"),
        "instance_count": resources.get("InstanceCount", 0),
        "failure": describe.get("FailureReason") or None,
        "extra": {"arn": describe.get("TransformJobArn")},
    }


def follow_transform_job(
    sagemaker_client: Any,
    name: str,
    *,
    on_status: Callable[[str], None],
    poll_seconds: float,
    heartbeat_s: float = PROGRESS_INTERVAL_S,
) -> dict[str, Any]:
    """Poll DescribeTransformJob until the job ends (a line on every change and at least every
    heartbeat_s); returns the last describe."""
    progress = ProgressLines(f"transform job {name}", None, on_status, heartbeat_s, announce=False)
    with progress:
        seen = None
        while True:
            describe = sagemaker_client.describe_transform_job(TransformJobName=name)
            status = state_of(describe)
            progress.status(status)
            if status != seen:
                reason = describe.get("FailureReason")
                on_status(f"transform job {name}: {status}" + (f" - {reason}" if reason else ""))
                seen = status
            if status in DONE:
                return describe
            time.sleep(poll_seconds)
