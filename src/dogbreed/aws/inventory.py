"""What this project has running on SageMaker, found by its tags, and how it is taken down.

The ledger says what dogbreed created; this module asks AWS, so `status` shows the truth and
`teardown` leaves nothing behind even when the ledger was lost or another machine deployed.
Only the SageMaker API is used (List* + ListTags): the Resource Groups Tagging API would need
one more permission, and lags behind deletions.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from dogbreed.aws import tags as tagging
from dogbreed.config.schema import SageMakerConfig

# kind -> (paginated List* call, the summaries' key, the name key, the ARN key, extra filters)
_LISTINGS: dict[str, tuple[str, str, str, str, dict[str, Any]]] = {
    "endpoint": ("list_endpoints", "Endpoints", "EndpointName", "EndpointArn", {}),
    "endpoint-config": ("list_endpoint_configs", "EndpointConfigs", "EndpointConfigName", "EndpointConfigArn", {}),
    "model": ("list_models", "Models", "ModelName", "ModelArn", {}),
    "training-job": (
        "list_training_jobs",
        "TrainingJobSummaries",
        "TrainingJobName",
        "TrainingJobArn",
        {"StatusEquals": "InProgress"},
    ),
    "tuning-job": (
        "list_hyper_parameter_tuning_jobs",
        "HyperParameterTuningJobSummaries",
        "HyperParameterTuningJobName",
        "HyperParameterTuningJobArn",
        {"StatusEquals": "InProgress"},
    ),
}
SERVING_KINDS = ("model", "endpoint-config", "endpoint")


@dataclass
class LiveResource:
    kind: str
    name: str
    arn: str
    created_at: datetime | None
    state: str
    tags: dict[str, str] = field(default_factory=dict)


def _not_found(exc: Exception) -> bool:
    error = getattr(exc, "response", {}).get("Error", {})
    message = error.get("Message", "")
    return error.get("Code") in ("ValidationException", "ResourceNotFound") and (
        "not find" in message.lower() or "does not exist" in message.lower() or "not found" in message.lower()
    )


def _state(kind: str, summary: dict[str, Any]) -> str:
    for key in ("EndpointStatus", "TrainingJobStatus", "HyperParameterTuningJobStatus"):
        if key in summary:
            return summary[key]
    return "Created"


def tagged(client: Any, config: SageMakerConfig, kinds: tuple[str, ...] = tuple(_LISTINGS)) -> Iterator[LiveResource]:
    """Every resource of `kinds` that carries this project's dogbreed:project tag."""
    for kind in kinds:
        method, key, name_key, arn_key, filters = _LISTINGS[kind]
        for page in client.get_paginator(method).paginate(**filters):
            for summary in page.get(key, []):
                try:
                    found = tagging.as_dict(client.list_tags(ResourceArn=summary[arn_key]).get("Tags", []))
                except Exception as exc:  # noqa: BLE001 - deleted between the list and here
                    if _not_found(exc):
                        continue
                    raise
                if tagging.is_ours(found, config):
                    yield LiveResource(
                        kind=kind,
                        name=summary[name_key],
                        arn=summary[arn_key],
                        created_at=summary.get("CreationTime"),
                        state=_state(kind, summary),
                        tags=found,
                    )


def serving_chain(client: Any, endpoint: str) -> tuple[str | None, list[str]]:
    """(endpoint config name, model names) behind an endpoint; (None, []) when it is gone."""
    try:
        config_name = client.describe_endpoint(EndpointName=endpoint)["EndpointConfigName"]
    except Exception as exc:  # noqa: BLE001
        if _not_found(exc):
            return None, []
        raise
    try:
        variants = client.describe_endpoint_config(EndpointConfigName=config_name)["ProductionVariants"]
    except Exception as exc:  # noqa: BLE001 - the config was deleted under a live endpoint
        if _not_found(exc):
            return config_name, []
        raise
    return config_name, [v["ModelName"] for v in variants if v.get("ModelName")]


def delete(client: Any, kind: str, name: str) -> bool:
    """Delete one model, endpoint config or endpoint; False when it did not exist."""
    method, argument = {
        "model": ("delete_model", "ModelName"),
        "endpoint-config": ("delete_endpoint_config", "EndpointConfigName"),
        "endpoint": ("delete_endpoint", "EndpointName"),
    }[kind]
    try:
        getattr(client, method)(**{argument: name})
    except Exception as exc:  # noqa: BLE001
        if _not_found(exc):
            return False
        raise
    return True


def teardown_order(resources: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Models first, then endpoint configs, then endpoints.

    The order issue #5 asks for, and the one the SDK's Predictor needs (delete_model finds
    the models through the endpoint config, so it must run before delete_endpoint removes
    the config). We resolve every name before deleting anything, so the order does not
    lose track of anything; it also means that a teardown cut short leaves the endpoint
    (which bills, but is listed and tagged) rather than a model no endpoint points to."""
    rank = {kind: i for i, kind in enumerate(SERVING_KINDS)}
    return sorted(dict.fromkeys(resources), key=lambda item: rank[item[0]])
