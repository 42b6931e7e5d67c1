"""deploy over an existing SageMaker endpoint updates it in place: the exact CreateModel,
CreateEndpointConfig, UpdateEndpoint and AddTags requests, the old model and config deleted
after, a failed update leaving the old model serving, and the dry run's plan from the ledger.

moto does not implement UpdateEndpoint; tests/backends/sagemaker/moto_plus.py adds it as AWS
documents it (a model whose data cannot be fetched fails the update and rolls it back)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from dogbreed.backends.base import DeployRequest
from dogbreed.errors import DogbreedError
from dogbreed.workflows import deploy as deploy_workflow
from dogbreed.workspace import Workspace
from tests.backends.sagemaker.conftest import BUCKET, INFERENCE_IMAGE, ROLE, make_backend, sm_config

FIRST = f"s3://{BUCKET}/dogbreed/jobs/dogbreed-train-1/output/model.tar.gz"
SECOND = f"s3://{BUCKET}/dogbreed/jobs/dogbreed-train-2/output/model.tar.gz"
MISSING = f"s3://{BUCKET}/dogbreed/jobs/dogbreed-train-3/output/model.tar.gz"
T1 = datetime(2026, 11, 27, 23, 15, 0, tzinfo=timezone.utc)
T2 = datetime(2026, 11, 28, 9, 30, 0, tzinfo=timezone.utc)
ARN = "arn:aws:sagemaker:us-east-1:123456789012:endpoint/dogbreed"


@pytest.fixture(autouse=True)
def _on_moto_plus(aws_plus):
    """Before `s3` and `sagemaker_client`, so they reach the same server."""


@pytest.fixture
def models(s3):
    for uri in (FIRST, SECOND):
        s3.put_object(Bucket=BUCKET, Key=uri.split(f"{BUCKET}/", 1)[1], Body=b"model.tar.gz")


def _tags(expires: str) -> list[dict]:
    return [
        {"Key": "dogbreed:project", "Value": "dogbreed"},
        {"Key": "dogbreed:run", "Value": "dogbreed"},
        {"Key": "dogbreed:kind", "Value": "endpoint"},
        {"Key": "dogbreed:expires-at", "Value": expires},
    ]


def _first_deploy(tmp_path, *sets: str):
    config = sm_config(tmp_path, *sets)
    backend = make_backend(config)
    first = backend.deploy(DeployRequest("dogbreed", FIRST, config, T1))
    return config, backend, first


def test_a_second_deploy_updates_the_endpoint_in_place_and_deletes_the_old_model(tmp_path, models, sagemaker_client):
    config, backend, first = _first_deploy(tmp_path)
    old_model = first.extra["model"]
    request = DeployRequest("dogbreed", SECOND, config, T2)
    planned = backend.plan_deploy(
        DeployRequest("dogbreed", SECOND, config, T2, serving={"model": old_model, "endpoint_config": "dogbreed"})
    )
    info = backend.deploy(request)

    new_model, new_config = planned["model"], planned["update"]["endpoint_config"]
    assert new_model.startswith("dogbreed-model-261128-093000-") and new_config.startswith("dogbreed-config-261128-093000-")
    assert new_model.rsplit("-", 1)[1] == new_config.rsplit("-", 1)[1]  # one deploy, one digest
    tags = _tags("2026-11-28T09:30:00+00:00")
    assert backend.last_requests == {
        "CreateModel": {
            "ModelName": new_model,
            "ExecutionRoleArn": ROLE,
            "PrimaryContainer": {
                "Image": INFERENCE_IMAGE,
                "Environment": {
                    "SAGEMAKER_PROGRAM": "inference.py",
                    "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
                    "DOGBREED_TOP_K": "5",  # deploy.top_k and deploy.response, as inference.py reads them
                    "DOGBREED_RESPONSE": "top_k",
                    "SAGEMAKER_CONTAINER_LOG_LEVEL": "20",
                    "SAGEMAKER_REGION": "us-east-1",
                },
                "ModelDataUrl": SECOND,
            },
            "Tags": tags,
        },
        "CreateEndpointConfig": {
            "EndpointConfigName": new_config,
            "ProductionVariants": [
                {
                    "VariantName": "AllTraffic",
                    "ModelName": new_model,
                    "InitialVariantWeight": 1,
                    "InitialInstanceCount": 1,
                    "InstanceType": "ml.m5.large",
                }
            ],
            "Tags": tags,
        },
        "UpdateEndpoint": {"EndpointName": "dogbreed", "EndpointConfigName": new_config},
        "AddTags": {"ResourceArn": ARN, "Tags": [{"Key": "dogbreed:expires-at", "Value": "2026-11-28T09:30:00+00:00"}]},
    }
    assert planned["requests"] == backend.last_requests  # --dry-run shows the very requests
    assert planned["update"]["then_delete"] == [f"model/{old_model}", "endpoint-config/dogbreed"]

    # moto: the endpoint serves the new config; only the new model and config are left.
    assert info.state == "in-service" and info.model_uri == SECOND and info.extra["model"] == new_model
    assert info.expires_at == T2  # the TTL starts again with the redeploy
    assert sagemaker_client.describe_endpoint(EndpointName="dogbreed")["EndpointConfigName"] == new_config
    assert [m["ModelName"] for m in sagemaker_client.list_models()["Models"]] == [new_model]
    assert [c["EndpointConfigName"] for c in sagemaker_client.list_endpoint_configs()["EndpointConfigs"]] == [new_config]


def test_a_failed_update_leaves_the_old_model_serving(tmp_path, models, sagemaker_client):
    config, backend, first = _first_deploy(tmp_path)
    old_model = first.extra["model"]
    with pytest.raises(DogbreedError) as caught:
        backend.deploy(DeployRequest("dogbreed", MISSING, config, T2))
    message = str(caught.value)
    assert message.startswith("endpoint dogbreed: the update to dogbreed-model-261128-093000-")
    assert f"Failed to download model data for container in variant AllTraffic: {MISSING} not found." in message
    assert message.endswith(f"it still serves {old_model} (InService), and the new model and config were deleted")
    described = sagemaker_client.describe_endpoint(EndpointName="dogbreed")
    assert described["EndpointStatus"] == "InService" and described["EndpointConfigName"] == "dogbreed"
    assert [m["ModelName"] for m in sagemaker_client.list_models()["Models"]] == [old_model]
    assert [c["EndpointConfigName"] for c in sagemaker_client.list_endpoint_configs()["EndpointConfigs"]] == ["dogbreed"]
    still = backend.describe_endpoint("dogbreed")
    assert still.model_uri == FIRST and still.expires_at == T1  # the old expiry too: no AddTags was sent
    assert "AddTags" not in backend.last_requests and "UpdateEndpoint" in backend.last_requests


def test_the_workflow_plans_an_update_from_the_ledger_and_restores_its_row_on_failure(tmp_path, models, sagemaker_client):
    config, backend, first = _first_deploy(tmp_path)
    ledger = Workspace(tmp_path / "ws").ledger
    deploy_workflow._record(ledger, backend, DeployRequest("dogbreed", FIRST, config, T1), first)

    plan = deploy_workflow.deploy(config, backend, ledger, model=SECOND, dry_run=True).plan
    assert set(plan["requests"]) == {"CreateModel", "CreateEndpointConfig", "UpdateEndpoint", "AddTags"}
    assert plan["update"]["replaces"] == {"model": first.extra["model"], "endpoint_config": "dogbreed"}
    assert [m["ModelName"] for m in sagemaker_client.list_models()["Models"]] == [first.extra["model"]]  # nothing sent

    with pytest.raises(DogbreedError):
        deploy_workflow.deploy(config, backend, ledger, model=MISSING)
    row = ledger.get("endpoint", "dogbreed", "sagemaker")
    assert row.state == "in-service" and row.meta["model_uri"] == FIRST  # the old model, still serving

    answer = deploy_workflow.deploy(config, backend, ledger, model=SECOND).endpoint
    assert answer.model_uri == SECOND
    assert ledger.get("endpoint", "dogbreed", "sagemaker").meta["model_uri"] == SECOND
