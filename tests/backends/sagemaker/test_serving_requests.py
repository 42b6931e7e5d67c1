"""The exact CreateModel, CreateEndpointConfig and CreateEndpoint requests (real-time and
serverless), deployed on moto, then described and deleted."""

from __future__ import annotations

import tarfile
from datetime import datetime, timezone

import pytest
from botocore.exceptions import ClientError

from dogbreed.backends.base import DeployRequest
from dogbreed.errors import DogbreedError
from tests.backends.sagemaker.conftest import BUCKET, INFERENCE_IMAGE, ROLE, make_backend, sm_config
from tests.serving.model_factory import copy_code

MODEL_URI = f"s3://{BUCKET}/dogbreed/jobs/dogbreed-train-1/output/model.tar.gz"
EXPIRES = datetime(2026, 11, 27, 23, 15, 0, tzinfo=timezone.utc)
TAGS = [
    {"Key": "dogbreed:project", "Value": "dogbreed"},
    {"Key": "dogbreed:run", "Value": "dogbreed"},
    {"Key": "dogbreed:kind", "Value": "endpoint"},
    {"Key": "dogbreed:expires-at", "Value": "2026-11-27T23:15:00+00:00"},
]


def _request(config, endpoint: str = "dogbreed", model_uri: str = MODEL_URI) -> DeployRequest:
    return DeployRequest(endpoint_name=endpoint, model_uri=model_uri, config=config, expires_at=EXPIRES)


def _deploy(tmp_path, *sets: str):
    config = sm_config(tmp_path, *sets)
    backend = make_backend(config)
    planned = backend.plan_deploy(_request(config))
    info = backend.deploy(_request(config))
    return backend, planned, info


def _model_request(name: str) -> dict:
    return {
        "ModelName": name,
        "ExecutionRoleArn": ROLE,
        "PrimaryContainer": {
            "Image": INFERENCE_IMAGE,
            # model.tar.gz carries code/inference.py: no repack, the container runs it from there.
            "Environment": {
                "SAGEMAKER_PROGRAM": "inference.py",
                "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
                # deploy.top_k and deploy.response, read by inference.py as on the local server
                "DOGBREED_TOP_K": "5",
                "DOGBREED_RESPONSE": "top_k",
                "SAGEMAKER_CONTAINER_LOG_LEVEL": "20",
                "SAGEMAKER_REGION": "us-east-1",
            },
            "ModelDataUrl": MODEL_URI,
        },
        "Tags": TAGS,
    }


def test_real_time_requests_are_exact_and_reach_moto(tmp_path, s3, sagemaker_client):
    backend, planned, info = _deploy(tmp_path)
    name = planned["model"]
    assert name.startswith("dogbreed-model-261127-231500-")
    sent = backend.last_requests
    assert sent == {
        "CreateModel": _model_request(name),
        "CreateEndpointConfig": {
            "EndpointConfigName": "dogbreed",
            "ProductionVariants": [
                {
                    "VariantName": "AllTraffic",
                    "ModelName": name,
                    "InitialVariantWeight": 1,
                    "InitialInstanceCount": 1,
                    "InstanceType": "ml.m5.large",
                }
            ],
            "Tags": TAGS,
        },
        "CreateEndpoint": {"EndpointName": "dogbreed", "EndpointConfigName": "dogbreed", "Tags": TAGS},
    }
    assert planned["requests"] == sent  # --dry-run shows the very requests
    assert planned["est_cost_per_hour"] == 0.115
    # What moto holds, and what the backend reads back.
    assert sagemaker_client.describe_model(ModelName=name)["PrimaryContainer"]["ModelDataUrl"] == MODEL_URI
    assert info.state == "in-service"
    assert info.arn == "arn:aws:sagemaker:us-east-1:123456789012:endpoint/dogbreed"
    assert info.model_uri == MODEL_URI
    assert info.expires_at == EXPIRES
    assert info.instance_type == "ml.m5.large" and info.est_cost_per_hour == 0.115
    assert info.extra["model"] == name and info.extra["endpoint_config"] == "dogbreed"


def test_serverless_requests(tmp_path, s3):
    backend, planned, info = _deploy(
        tmp_path,
        "deploy.serverless=true",
        "deploy.serverless_config.memory_mb=2048",
        "deploy.serverless_config.max_concurrency=3",
    )
    sent = backend.last_requests
    assert planned["requests"] == sent
    assert sent["CreateEndpointConfig"]["ProductionVariants"] == [
        {
            "VariantName": "AllTraffic",
            "ModelName": planned["model"],
            "InitialVariantWeight": 1,
            "ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 3},
        }
    ]
    assert sent["CreateModel"]["PrimaryContainer"]["Image"] == INFERENCE_IMAGE  # the CPU image
    assert sent["CreateEndpoint"] == {"EndpointName": "dogbreed", "EndpointConfigName": "dogbreed", "Tags": TAGS}
    assert planned["cost"]["instance_type"] == "serverless"


def test_more_instances_and_another_type(tmp_path, s3):
    backend, _, info = _deploy(tmp_path, "sagemaker.instance_type.endpoint=ml.c5.xlarge", "sagemaker.endpoint_instance_count=2")
    variant = backend.last_requests["CreateEndpointConfig"]["ProductionVariants"][0]
    assert (variant["InstanceType"], variant["InitialInstanceCount"]) == ("ml.c5.xlarge", 2)
    assert info.est_cost_per_hour == pytest.approx(2 * 0.204)


def test_a_local_model_tar_is_uploaded_content_addressed(tmp_path, s3):
    # This dogbreed's handler in code/: deploy compares it before uploading (test_trust_code.py).
    copy_code(tmp_path / "model")
    model = tmp_path / "model.tar.gz"
    with tarfile.open(model, "w:gz") as archive:
        archive.add(tmp_path / "model" / "code", arcname="code")
    config = sm_config(tmp_path)
    backend = make_backend(config)
    planned = backend.plan_deploy(_request(config, model_uri=str(model)))
    uri = planned["requests"]["CreateModel"]["PrimaryContainer"]["ModelDataUrl"]
    assert uri.startswith(f"s3://{BUCKET}/dogbreed/files/") and uri.endswith("/model.tar.gz")
    assert planned["uploads"][0]["uri"] == uri
    with pytest.raises(ClientError):  # the dry run uploaded nothing
        s3.head_object(Bucket=BUCKET, Key=uri.split(f"s3://{BUCKET}/", 1)[1])
    backend.deploy(_request(config, model_uri=str(model)))
    assert s3.head_object(Bucket=BUCKET, Key=uri.split(f"s3://{BUCKET}/", 1)[1])["ContentLength"] == model.stat().st_size


def test_the_same_deploy_request_twice_changes_nothing(tmp_path, s3, sagemaker_client):
    """A redeploy updates the endpoint in place (test_redeploy.py); the very same request
    (same model, same expiry) would replace the serving model by itself, and is refused."""
    backend, planned, _ = _deploy(tmp_path)
    with pytest.raises(DogbreedError, match=f"endpoint dogbreed already serves {planned['model']}, made by this very deploy"):
        backend.deploy(_request(backend.config))
    assert [m["ModelName"] for m in sagemaker_client.list_models()["Models"]] == [planned["model"]]


def test_delete_removes_model_config_and_endpoint(tmp_path, s3, sagemaker_client):
    backend, planned, _ = _deploy(tmp_path)
    assert backend.delete_endpoint("dogbreed") is True
    assert sagemaker_client.list_models()["Models"] == []
    assert sagemaker_client.list_endpoint_configs()["EndpointConfigs"] == []
    assert sagemaker_client.list_endpoints()["Endpoints"] == []
    assert backend.describe_endpoint("dogbreed").state == "gone"
    assert backend.delete_endpoint("dogbreed") is False
