"""The TTL enforced by AWS itself: a one-time EventBridge Scheduler schedule that deletes the
endpoint when deploy.ttl ends, so nothing depends on a cron job the user must remember.

- The schedule's target is Scheduler's universal target for SageMaker's DeleteEndpoint
  (arn:aws:scheduler:::aws-sdk:sagemaker:deleteEndpoint, its Input the API's parameters),
  assumed as sagemaker.scheduler_role, which needs sagemaker:DeleteEndpoint and a trust
  policy for scheduler.amazonaws.com.
- `at(...)` runs once; ActionAfterCompletion=DELETE removes the schedule after it ran.
- Schedules cannot carry tags, schedule groups can: ours live in a group named after the
  project (sagemaker.prefix), tagged dogbreed:project like everything else, so `status` and
  `teardown --all` find them from AWS alone.
- The endpoint's model and endpoint config stay (DeleteEndpoint is one call); they cost
  nothing, and `teardown --all` sweeps them by their tags.
Builders are pure; the few calls take the scheduler client the backend hands them.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from typing import Any

from dogbreed.aws.client_errors import code_of
from dogbreed.aws.tags import KIND, PROJECT
from dogbreed.config.schema import SageMakerConfig

DELETE_ENDPOINT_TARGET = "arn:aws:scheduler:::aws-sdk:sagemaker:deleteEndpoint"
_NAME_MAX = 64


def _safe(text: str) -> str:
    return re.sub(r"[^0-9A-Za-z_.-]+", "-", text).strip("-") or "dogbreed"


def group_name(config: SageMakerConfig) -> str:
    """'dogbreed' for sagemaker.prefix 'dogbreed' (Scheduler names allow [0-9A-Za-z_.-])."""
    return _safe(config.prefix)[:_NAME_MAX]


def schedule_name(endpoint: str) -> str:
    return f"{endpoint}-ttl"[:_NAME_MAX]


def endpoint_of(name: str) -> str:
    return name.removesuffix("-ttl")


def group_request(config: SageMakerConfig) -> dict[str, Any]:
    """CreateScheduleGroup: the project's group, tagged."""
    return {
        "Name": group_name(config),
        "Tags": [{"Key": PROJECT, "Value": config.prefix}, {"Key": KIND, "Value": "schedule-group"}],
    }


def schedule_request(config: SageMakerConfig, endpoint: str, expires_at: datetime) -> dict[str, Any]:
    """CreateSchedule: delete `endpoint` once, at `expires_at` (UTC, to the second)."""
    when = expires_at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return {
        "Name": schedule_name(endpoint),
        "GroupName": group_name(config),
        "ScheduleExpression": f"at({when})",
        "ScheduleExpressionTimezone": "UTC",
        "FlexibleTimeWindow": {"Mode": "OFF"},
        "Target": {
            "Arn": DELETE_ENDPOINT_TARGET,
            "RoleArn": config.scheduler_role,
            "Input": json.dumps({"EndpointName": endpoint}),
        },
        "ActionAfterCompletion": "DELETE",
        "Description": f"dogbreed: delete SageMaker endpoint {endpoint} when its TTL (deploy.ttl) ends",
    }


def expiry_of(schedule: dict[str, Any]) -> str | None:
    """'at(2026-11-27T23:15:00)' -> '2026-11-27T23:15:00+00:00'."""
    match = re.fullmatch(r"at\((.+)\)", schedule.get("ScheduleExpression", ""))
    return datetime.fromisoformat(match.group(1)).replace(tzinfo=timezone.utc).isoformat() if match else None


def put_schedule(client: Any, config: SageMakerConfig, endpoint: str, expires_at: datetime) -> tuple[str, dict[str, Any]]:
    """Create the schedule (and the project's group on first use), or move an existing one to
    the new expiry (a redeploy). ('created' | 'moved', the request sent)."""
    group = group_request(config)
    try:
        client.get_schedule_group(Name=group["Name"])
    except Exception as exc:  # noqa: BLE001 - botocore's ResourceNotFoundException
        if code_of(exc) != "ResourceNotFoundException":
            raise
        try:
            client.create_schedule_group(**group)
        except Exception as again:  # noqa: BLE001 - another deploy created it meanwhile
            if code_of(again) != "ConflictException":
                raise
    request = schedule_request(config, endpoint, expires_at)
    try:
        client.create_schedule(**request)
        return "created", request
    except Exception as exc:  # noqa: BLE001 - ConflictException: it exists
        if code_of(exc) != "ConflictException":
            raise
    client.update_schedule(**request)  # replaces the whole definition: the same request, a new time
    return "moved", request


def delete_schedule(client: Any, config: SageMakerConfig, endpoint: str) -> bool:
    """False when there was none (it ran already, or the TTL was only a tag)."""
    try:
        client.delete_schedule(Name=schedule_name(endpoint), GroupName=group_name(config))
    except Exception as exc:  # noqa: BLE001
        if code_of(exc) == "ResourceNotFoundException":
            return False
        raise
    return True


def project_schedules(client: Any, config: SageMakerConfig) -> list[dict[str, Any]]:
    """GetSchedule of every schedule in the project's group; [] when the group does not exist."""
    try:
        pages = client.get_paginator("list_schedules").paginate(GroupName=group_name(config))
        names = [summary["Name"] for page in pages for summary in page.get("Schedules", [])]
    except Exception as exc:  # noqa: BLE001
        if code_of(exc) == "ResourceNotFoundException":
            return []
        raise
    return [client.get_schedule(Name=name, GroupName=group_name(config)) for name in names]
