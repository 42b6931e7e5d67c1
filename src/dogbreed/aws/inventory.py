"""What this project has running on SageMaker, found by its tags, and how it is taken down.

The ledger says what dogbreed created; this module asks AWS, so `status` shows the truth and
`teardown` leaves nothing behind even when the ledger was lost or another machine deployed.
Only the SageMaker API is used (List* + ListTags): the Resource Groups Tagging API would need
one more permission, and lags behind deletions.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from dogbreed.aws import pricing
from dogbreed.aws import tags as tagging
from dogbreed.aws.client_errors import is_missing
from dogbreed.config import Config
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
    "transform-job": (
        "list_transform_jobs",
        "TransformJobSummaries",
        "TransformJobName",
        "TransformJobArn",
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


def _state(kind: str, summary: dict[str, Any]) -> str:
    for key in ("EndpointStatus", "TrainingJobStatus", "HyperParameterTuningJobStatus", "TransformJobStatus"):
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
                    if is_missing(exc):
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
        if is_missing(exc):
            return None, []
        raise
    try:
        variants = client.describe_endpoint_config(EndpointConfigName=config_name)["ProductionVariants"]
    except Exception as exc:  # noqa: BLE001 - the config was deleted under a live endpoint
        if is_missing(exc):
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
        if is_missing(exc):
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


def job_hourly_cost(client: Any, config: Config, found: LiveResource) -> float:
    """USD/hour a running training, tuning or transform job costs now (tuning: per running trial)."""
    if found.kind == "transform-job":
        resources = client.describe_transform_job(TransformJobName=found.name).get("TransformResources", {})
        running = 1
    elif found.kind == "training-job":
        resources = client.describe_training_job(TrainingJobName=found.name).get("ResourceConfig", {})
        running = 1
    else:
        job = client.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=found.name)
        resources = job.get("TrainingJobDefinition", {}).get("HyperParameterTuningResourceConfig", {})
        running = job.get("TrainingJobStatusCounters", {}).get("InProgress", 0)
    return pricing.jobs_hourly(config, resources.get("InstanceType", ""), resources.get("InstanceCount", 1), running)


def status_row(found: LiveResource, state: str, per_hour: float, now: datetime | None = None) -> dict[str, Any]:
    """One row of `status` (DESIGN: kind, name, backend, created_at, expires_at, state,
    est_cost_per_hour), plus its age, ARN and run."""
    now = now or datetime.now(timezone.utc)
    created = found.created_at
    return {
        "kind": found.kind,
        "name": found.name,
        "backend": "sagemaker",
        "created_at": created.isoformat() if created else None,
        "age_s": int((now - created).total_seconds()) if created else None,
        "expires_at": found.tags.get(tagging.EXPIRES_AT),
        "state": state,
        "est_cost_per_hour": round(per_hour, 6),
        "arn": found.arn,
        "run": found.tags.get(tagging.RUN),
    }


def teardown_targets(client: Any, config: SageMakerConfig, names: list[str] | None) -> tuple[list[tuple[str, str]], list[str]]:
    """((kind, name) to delete, names that matched nothing). Without names: every serving
    resource tagged for this project. With names: each name's endpoint chain (tagged or not,
    since the ledger may name one) and whatever is tagged with it as name or run."""
    serving = list(tagged(client, config, SERVING_KINDS))
    if not names:
        return [(r.kind, r.name) for r in serving], []
    wanted: list[tuple[str, str]] = []
    not_found: list[str] = []
    for name in names:
        matched = [(r.kind, r.name) for r in serving if name in (r.name, r.tags.get(tagging.RUN))]
        config_name, models = serving_chain(client, name)
        if config_name is not None:
            matched += [("model", m) for m in models] + [("endpoint-config", config_name), ("endpoint", name)]
        if not matched:
            not_found.append(name)
        wanted += matched
    return teardown_order(wanted), not_found
