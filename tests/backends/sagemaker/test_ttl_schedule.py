"""The TTL enforced by AWS: deploy creates a one-time EventBridge Scheduler schedule that
deletes the endpoint at its expiry (moto implements `scheduler`); redeploys move it, status
shows it, teardown deletes it, and without a scheduler role the TTL is plainly only a tag."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from dogbreed.aws.preflight import PreflightError
from dogbreed.backends.base import DeployRequest
from tests.backends.sagemaker.conftest import BUCKET, make_backend, record_calls, sm_config

SCHEDULER_ROLE = "arn:aws:iam::123456789012:role/DogbreedScheduler"
FIRST = f"s3://{BUCKET}/dogbreed/jobs/dogbreed-train-1/output/model.tar.gz"
SECOND = f"s3://{BUCKET}/dogbreed/jobs/dogbreed-train-2/output/model.tar.gz"
T1 = datetime(2026, 11, 27, 23, 15, 0, tzinfo=timezone.utc)
T2 = datetime(2026, 11, 28, 9, 30, 0, tzinfo=timezone.utc)


@pytest.fixture(autouse=True)
def _on_moto_plus(aws_plus):
    """moto plus UpdateEndpoint (for the redeploy); before `s3` and `sagemaker_client`."""


@pytest.fixture
def scheduler(aws_plus):
    import boto3

    return boto3.client("scheduler", region_name="us-east-1")


@pytest.fixture
def models(s3):
    for uri in (FIRST, SECOND):
        s3.put_object(Bucket=BUCKET, Key=uri.split(f"{BUCKET}/", 1)[1], Body=b"model.tar.gz")


def _schedule(at: str) -> dict:
    return {
        "Name": "dogbreed-ttl",
        "GroupName": "dogbreed",
        "ScheduleExpression": f"at({at})",
        "ScheduleExpressionTimezone": "UTC",
        "FlexibleTimeWindow": {"Mode": "OFF"},
        "Target": {
            "Arn": "arn:aws:scheduler:::aws-sdk:sagemaker:deleteEndpoint",
            "RoleArn": SCHEDULER_ROLE,
            "Input": json.dumps({"EndpointName": "dogbreed"}),
        },
        "ActionAfterCompletion": "DELETE",
        "Description": "dogbreed: delete SageMaker endpoint dogbreed when its TTL (deploy.ttl) ends",
    }


def _backend(tmp_path, *sets: str):
    config = sm_config(tmp_path, f"sagemaker.scheduler_role={SCHEDULER_ROLE}", *sets)
    backend = make_backend(config)
    return config, backend, record_calls(backend.aws, "scheduler")


def test_deploy_creates_the_schedule_that_deletes_the_endpoint(tmp_path, models, scheduler):
    config, backend, calls = _backend(tmp_path)
    planned = backend.plan_deploy(DeployRequest("dogbreed", FIRST, config, T1))
    backend.deploy(DeployRequest("dogbreed", FIRST, config, T1))

    group = {
        "Name": "dogbreed",
        "Tags": [{"Key": "dogbreed:project", "Value": "dogbreed"}, {"Key": "dogbreed:kind", "Value": "schedule-group"}],
    }
    assert calls == [
        ("GetScheduleGroup", {"Name": "dogbreed"}),
        ("CreateScheduleGroup", group),
        ("CreateSchedule", _schedule("2026-11-27T23:15:00")),
    ]
    assert backend.last_requests["CreateSchedule"] == planned["requests"]["CreateSchedule"] == _schedule("2026-11-27T23:15:00")
    assert (
        planned["ttl"] == "EventBridge Scheduler deletes endpoint dogbreed at 2026-11-27T23:15:00+00:00 (schedule dogbreed-ttl)"
    )
    stored = scheduler.get_schedule(Name="dogbreed-ttl", GroupName="dogbreed")
    assert stored["ScheduleExpression"] == "at(2026-11-27T23:15:00)" and stored["Target"]["Arn"].endswith(
        "sagemaker:deleteEndpoint"
    )
    assert (
        scheduler.list_tags_for_resource(ResourceArn=scheduler.get_schedule_group(Name="dogbreed")["Arn"])["Tags"]
        == group["Tags"]
    )

    # status shows it beside the endpoint, with the endpoint's expiry
    rows = {(row["kind"], row["name"]): row for row in backend.list_resources()}
    row = rows[("schedule", "dogbreed-ttl")]
    assert row["expires_at"] == "2026-11-27T23:15:00+00:00" and row["deletes"] == "endpoint/dogbreed"
    assert row["state"] == "ENABLED" and row["est_cost_per_hour"] == 0.0
    assert rows[("endpoint", "dogbreed")]["expires_at"] == "2026-11-27T23:15:00+00:00"


def test_a_redeploy_moves_the_schedule_and_teardown_deletes_it(tmp_path, models, scheduler):
    config, backend, calls = _backend(tmp_path)
    backend.deploy(DeployRequest("dogbreed", FIRST, config, T1))
    del calls[:]
    backend.deploy(DeployRequest("dogbreed", SECOND, config, T2))
    assert calls[-2:] == [
        ("CreateSchedule", _schedule("2026-11-28T09:30:00")),  # exists: ConflictException
        ("UpdateSchedule", _schedule("2026-11-28T09:30:00")),
    ]
    assert backend.last_requests["UpdateSchedule"] == _schedule("2026-11-28T09:30:00")
    assert scheduler.get_schedule(Name="dogbreed-ttl", GroupName="dogbreed")["ScheduleExpression"] == "at(2026-11-28T09:30:00)"

    del calls[:]
    assert backend.delete_endpoint("dogbreed") is True
    assert calls == [("DeleteSchedule", {"Name": "dogbreed-ttl", "GroupName": "dogbreed"})]
    assert scheduler.list_schedules(GroupName="dogbreed")["Schedules"] == []
    assert [row for row in backend.list_resources() if row["kind"] == "schedule"] == []


def test_teardown_all_sweeps_a_schedule_whose_endpoint_is_gone(tmp_path, models, scheduler, sagemaker_client):
    config, backend, _ = _backend(tmp_path)
    backend.deploy(DeployRequest("dogbreed", FIRST, config, T1))
    sagemaker_client.delete_endpoint(EndpointName="dogbreed")  # deleted behind our back
    assert "schedule/dogbreed-ttl" in backend.teardown(dry_run=True)["deleted"]
    assert scheduler.list_schedules(GroupName="dogbreed")["Schedules"] != []  # a dry run deletes nothing
    assert "schedule/dogbreed-ttl" in backend.teardown()["deleted"]
    assert scheduler.list_schedules(GroupName="dogbreed")["Schedules"] == []


def test_without_a_scheduler_role_the_ttl_is_plainly_only_a_tag(tmp_path, models):
    config = sm_config(tmp_path)
    backend = make_backend(config)
    calls = record_calls(backend.aws, "scheduler")
    planned = backend.plan_deploy(DeployRequest("dogbreed", FIRST, config, T1))
    backend.deploy(DeployRequest("dogbreed", FIRST, config, T1))
    note = (
        "only a tag: nothing deletes endpoint dogbreed at 2026-11-27T23:15:00+00:00; set sagemaker.scheduler_role to have "
        "EventBridge Scheduler delete it, or run `dogbreed teardown --expired --yes --backend sagemaker` on a schedule"
    )
    assert planned["ttl"] == note and "CreateSchedule" not in planned["requests"]
    assert f"warning: deploy.ttl is {note}" in backend.reporter.lines
    assert calls == []  # nothing asked of Scheduler while deploying


def test_the_preflight_checks_the_scheduler_role_account(tmp_path, s3, sagemaker_client):
    config = sm_config(tmp_path, "sagemaker.preflight=true", "sagemaker.scheduler_role=arn:aws:iam::999999999999:role/Sched")
    backend = make_backend(config)
    with pytest.raises(PreflightError) as caught:
        backend.deploy(DeployRequest("dogbreed", FIRST, config, T1))
    assert caught.value.problems == [
        "sagemaker.scheduler_role is in account 999999999999 but sagemaker.role in 123456789012; use a role of 123456789012"
    ]
    assert sagemaker_client.list_endpoints()["Endpoints"] == []


def test_status_shows_the_schedule_in_json_and_in_the_table(tmp_path, models):
    from tests.conftest import dogbreed_cli

    config, backend, _ = _backend(tmp_path)
    backend.deploy(DeployRequest("dogbreed", FIRST, config, T1))
    sets = [
        "--backend", "sagemaker", "--set", f"workspace={tmp_path / 'ws'}", "--set", "sagemaker.region=us-east-1",
        "--set", f"sagemaker.role={config.sagemaker.role}", "--set", f"sagemaker.bucket={BUCKET}",
    ]  # fmt: skip
    run = dogbreed_cli("status", "--json", *sets)
    assert run.returncode == 0, run.stderr
    rows = {row["name"]: row for row in json.loads(run.stdout)["resources"] if row["kind"] == "schedule"}
    assert rows["dogbreed-ttl"]["expires_at"] == "2026-11-27T23:15:00+00:00"
    assert rows["dogbreed-ttl"]["in_ledger"] is False and rows["dogbreed-ttl"]["deletes"] == "endpoint/dogbreed"
    table = dogbreed_cli("status", *sets, env={"COLUMNS": "160"})
    assert table.returncode == 0, table.stderr
    assert "dogbreed-ttl" in table.stdout and "schedule" in table.stdout
