"""SageMaker Batch Transform: where a job's input and output live, the exact
CreateTransformJob request, and DescribeTransformJob read as data (its price is in
pricing.py, following it in watch.py).

A transform job starts instances with the model's inference container, sends every object
under the input prefix to `/invocations` (one image per request: SplitType None,
BatchStrategy SingleRecord), writes each answer beside the input's name as `<name>.out`
under the output path, and then stops its instances by itself: nothing bills afterwards,
unlike an endpoint. The model is the one deploy creates from the same model.tar.gz (no
repacking; aws/model_deployment.py), so a transform answers what an endpoint would.
Where its input and output live: sagemaker_names.py.
"""

from __future__ import annotations

from typing import Any

from dogbreed.config import Config

# What every transform request is sent as: raw image bytes (inference.py tells JPEG from PNG
# itself), and the answer as the endpoint's JSON ({"predictions": [...]}, deploy.top_k breeds).
CONTENT_TYPE = "application/x-image"
ACCEPT = "application/json"
INVOCATION_TIMEOUT_S = 60  # the endpoint contract's limit per invocation
OUTPUT_SUFFIX = ".out"


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
