"""What SageMaker work costs by the hour, from the price table in sagemaker.prices.

Estimates, not bills: on-demand list prices per instance-hour, times instances, times the
hours a job is expected to take (sagemaker.expected_hours), times the jobs. Spot can cost far
less; the estimate stays the on-demand ceiling and says so.
"""

from __future__ import annotations

from typing import Any

from dogbreed.config import Config


def hourly(config: Config, instance_type: str, count: int = 1) -> float | None:
    """USD/hour of `count` instances, None when the table has no price for the type."""
    price = config.sagemaker.prices.get(instance_type)
    return None if price is None else round(price * count, 6)


def _estimate(config: Config, instance_type: str, count: int, jobs: int) -> dict[str, Any]:
    per_hour = hourly(config, instance_type, count)
    hours = config.sagemaker.expected_hours
    estimate: dict[str, Any] = {
        "instance_type": instance_type,
        "instance_count": count,
        "jobs": jobs,
        "expected_hours_per_job": hours,
        "usd_per_hour": per_hour,
        "estimated_usd": None if per_hour is None else round(per_hour * hours * jobs, 4),
    }
    if per_hour is None:
        estimate["note"] = f"no price for {instance_type} in sagemaker.prices; add one to estimate"
    elif config.sagemaker.spot:
        estimate["note"] = "on-demand ceiling; managed spot usually costs much less"
    return estimate


def training_estimate(config: Config) -> dict[str, Any]:
    sm = config.sagemaker
    return _estimate(config, sm.instance_type.train, sm.instance_count, 1)


def tuning_estimate(config: Config, jobs: int) -> dict[str, Any]:
    sm = config.sagemaker
    return _estimate(config, sm.instance_type.tune, sm.instance_count, jobs)


def endpoint_hourly(config: Config, instance_type: str | None, count: int) -> float:
    """For status: USD/hour of a live endpoint (serverless: the table's 'serverless' entry)."""
    return hourly(config, instance_type or "serverless", count) or 0.0


def endpoint_estimate(config: Config) -> dict[str, Any]:
    if config.deploy.serverless:
        instance_type, count = "serverless", 1
    else:
        instance_type, count = config.sagemaker.instance_type.endpoint, config.sagemaker.endpoint_instance_count
    per_hour = hourly(config, instance_type, count)
    estimate: dict[str, Any] = {"instance_type": instance_type, "instance_count": count, "usd_per_hour": per_hour}
    if config.deploy.serverless:
        estimate["note"] = "serverless bills per request and memory; the table's 'serverless' entry is used"
    elif per_hour is None:
        estimate["note"] = f"no price for {instance_type} in sagemaker.prices; add one to estimate"
    return estimate
