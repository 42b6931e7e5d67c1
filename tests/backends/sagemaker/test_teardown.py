"""Teardown and status by tags: what this project left on SageMaker is found from AWS alone,
even after the ledger is gone, and nobody else's resources are touched."""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timedelta, timezone

from dogbreed.backends.base import DeployRequest
from tests.backends.sagemaker.conftest import BUCKET, INFERENCE_IMAGE, ROLE, make_backend, sm_config
from tests.conftest import dogbreed_cli

EXPIRES = datetime(2026, 11, 28, 1, 0, tzinfo=timezone.utc)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _deploy(backend, endpoint: str) -> str:
    uri = f"s3://{BUCKET}/dogbreed/jobs/{endpoint}/output/model.tar.gz"
    return backend.deploy(DeployRequest(endpoint, uri, backend.config, EXPIRES)).extra["model"]


def _foreign(sagemaker_client, name: str, project: str | None) -> None:
    """A model, endpoint config and endpoint someone else made (another project, or untagged)."""
    tags = [{"Key": "dogbreed:project", "Value": project}] if project else []
    container = {"Image": INFERENCE_IMAGE, "ModelDataUrl": f"s3://{BUCKET}/other/model.tar.gz"}
    sagemaker_client.create_model(ModelName=name, ExecutionRoleArn=ROLE, PrimaryContainer=container, Tags=tags)
    variant = {"VariantName": "AllTraffic", "ModelName": name, "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}
    sagemaker_client.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[variant], Tags=tags)
    sagemaker_client.create_endpoint(EndpointName=name, EndpointConfigName=name, Tags=tags)


def _names(sagemaker_client) -> dict[str, set[str]]:
    return {
        "model": {m["ModelName"] for m in sagemaker_client.list_models()["Models"]},
        "endpoint-config": {c["EndpointConfigName"] for c in sagemaker_client.list_endpoint_configs()["EndpointConfigs"]},
        "endpoint": {e["EndpointName"] for e in sagemaker_client.list_endpoints()["Endpoints"]},
    }


def test_teardown_by_tags_after_the_ledger_was_deleted(tmp_path, s3, sagemaker_client):
    first = make_backend(sm_config(tmp_path / "one"))
    model_a, model_b = _deploy(first, "dogbreed-a"), _deploy(first, "dogbreed-b")
    # A model a failed deploy left behind: tagged, but no endpoint points to it.
    orphan = "dogbreed-model-orphan"
    sagemaker_client.create_model(
        ModelName=orphan,
        ExecutionRoleArn=ROLE,
        PrimaryContainer={"Image": INFERENCE_IMAGE, "ModelDataUrl": f"s3://{BUCKET}/x/model.tar.gz"},
        Tags=[{"Key": "dogbreed:project", "Value": "dogbreed"}, {"Key": "dogbreed:run", "Value": "dogbreed-c"}],
    )
    _foreign(sagemaker_client, "other-project", "someone-else")
    _foreign(sagemaker_client, "untagged", None)
    shutil.rmtree(tmp_path / "one")  # the ledger, the workspace: gone

    fresh = make_backend(sm_config(tmp_path / "two"))
    status = {(row["kind"], row["name"]) for row in fresh.list_resources()}
    assert status == {
        ("endpoint", "dogbreed-a"),
        ("endpoint-config", "dogbreed-a"),
        ("model", model_a),
        ("endpoint", "dogbreed-b"),
        ("endpoint-config", "dogbreed-b"),
        ("model", model_b),
        ("model", orphan),
    }
    planned = fresh.teardown(dry_run=True)
    assert len(planned["deleted"]) == 7 and _names(sagemaker_client)["model"] >= {model_a, model_b, orphan}

    result = fresh.teardown()
    assert sorted(result["deleted"]) == sorted(
        [
            f"model/{model_a}",
            f"model/{model_b}",
            f"model/{orphan}",
            "endpoint-config/dogbreed-a",
            "endpoint-config/dogbreed-b",
            "endpoint/dogbreed-a",
            "endpoint/dogbreed-b",
        ]
    )
    # Models first, endpoints last (aws/inventory.py, teardown_order).
    kinds = [item.split("/")[0] for item in result["deleted"]]
    assert kinds == sorted(kinds, key=["model", "endpoint-config", "endpoint"].index)
    assert result["not_found"] == []
    left = {"other-project", "untagged"}
    assert _names(sagemaker_client) == {"model": left, "endpoint-config": left, "endpoint": left}


def test_teardown_of_one_name_takes_its_chain_only(tmp_path, s3, sagemaker_client):
    backend = make_backend(sm_config(tmp_path))
    model_a = _deploy(backend, "dogbreed-a")
    model_b = _deploy(backend, "dogbreed-b")
    result = backend.teardown(["dogbreed-a", "never-deployed"])
    assert result["deleted"] == [f"model/{model_a}", "endpoint-config/dogbreed-a", "endpoint/dogbreed-a"]
    assert result["not_found"] == ["never-deployed"]
    assert _names(sagemaker_client) == {"model": {model_b}, "endpoint-config": {"dogbreed-b"}, "endpoint": {"dogbreed-b"}}


def test_status_rows_carry_age_expiry_and_price(tmp_path, s3):
    backend = make_backend(sm_config(tmp_path))
    _deploy(backend, "dogbreed")
    rows = {row["kind"]: row for row in backend.list_resources()}
    endpoint = rows["endpoint"]
    assert endpoint["backend"] == "sagemaker" and endpoint["state"] == "in-service"
    assert endpoint["expires_at"] == EXPIRES.isoformat()
    assert endpoint["est_cost_per_hour"] == 0.115
    assert endpoint["age_s"] >= 0 and endpoint["created_at"]
    assert rows["model"]["est_cost_per_hour"] == 0.0 and rows["endpoint-config"]["est_cost_per_hour"] == 0.0


def _cli_options(root) -> list[str]:
    return [
        "--backend", "sagemaker", "--set", f"sagemaker.role={ROLE}", "--set", f"sagemaker.bucket={BUCKET}",
        "--set", "sagemaker.region=us-east-1", "--set", "sagemaker.preflight=false", "--set", f"workspace={root}",
    ]  # fmt: skip


def _cli_json(*args: str) -> dict:
    done = dogbreed_cli(*args, "--json", timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_a_fresh_machine_tears_down_expired_then_all_tagged_endpoints_through_the_cli(tmp_path, s3, sagemaker_client):
    """A CI runner's ledger is empty, and SageMaker never stops an endpoint at its TTL:
    `teardown --expired` (on a schedule) and `teardown --all` find ours by tags."""
    first = make_backend(sm_config(tmp_path / "one"))
    hour = timedelta(hours=1)
    past = first.deploy(DeployRequest("dogbreed-old", f"s3://{BUCKET}/a/model.tar.gz", first.config, utcnow() - hour))
    live = first.deploy(DeployRequest("dogbreed-new", f"s3://{BUCKET}/b/model.tar.gz", first.config, utcnow() + hour))
    orphan = "dogbreed-model-orphan"
    sagemaker_client.create_model(
        ModelName=orphan, ExecutionRoleArn=ROLE,
        PrimaryContainer={"Image": INFERENCE_IMAGE, "ModelDataUrl": f"s3://{BUCKET}/x/model.tar.gz"},
        Tags=[{"Key": "dogbreed:project", "Value": "dogbreed"}, {"Key": "dogbreed:run", "Value": "dogbreed-c"}],
    )  # fmt: skip
    _foreign(sagemaker_client, "other-project", "someone-else")
    shutil.rmtree(tmp_path / "one")
    options = _cli_options(tmp_path / "runner")

    planned = _cli_json("teardown", "--expired", "--dry-run", *options)
    assert planned["would_delete"] == ["dogbreed-old"] and "dogbreed-old" in _names(sagemaker_client)["endpoint"]
    expired = _cli_json("teardown", "--expired", "--yes", *options)
    assert expired == {"deleted": ["dogbreed-old"], "not_found": [], "dry_run": False}
    names = _names(sagemaker_client)
    assert names["endpoint"] == {"dogbreed-new", "other-project"}
    assert past.extra["model"] not in names["model"] and live.extra["model"] in names["model"]

    everything = _cli_json("teardown", "--all", "--yes", *options)
    assert everything["deleted"] == ["dogbreed-new"] and everything["swept"] == [f"model/{orphan}"]
    left = {"other-project"}
    assert _names(sagemaker_client) == {"model": left, "endpoint-config": left, "endpoint": left}
    assert _cli_json("teardown", "--all", "--yes", *options) == {"deleted": [], "not_found": [], "dry_run": False}


def test_expired_takes_no_names(tmp_path):
    done = dogbreed_cli("teardown", "--expired", "some-endpoint", "--set", f"workspace={tmp_path}", "--json")
    assert done.returncode == 2 and "--expired picks the endpoints itself" in done.stderr
