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


def transform_estimate(config: Config) -> dict[str, Any]:
    """USD of one Batch Transform job: instances x $/hour x transform.expected_hours (it bills
    only while it runs, and stops by itself)."""
    settings = config.transform
    per_hour = hourly(config, settings.instance_type, settings.instance_count)
    estimate: dict[str, Any] = {
        "instance_type": settings.instance_type,
        "instance_count": settings.instance_count,
        "expected_hours": settings.expected_hours,
        "usd_per_hour": per_hour,
        "estimated_usd": None if per_hour is None else round(per_hour * settings.expected_hours, 4),
        "note": "billed only while the job runs; it stops by itself",
    }
    if per_hour is None:
        estimate["note"] = f"no price for {settings.instance_type} in sagemaker.prices; add one to estimate"
    return estimate


def jobs_hourly(config: Config, instance_type: str, count: int, running: int) -> float:
    """For status: USD/hour of `running` jobs of `count` instances each (0.0 when unpriced)."""
    return (hourly(config, instance_type, count) or 0.0) * running


def endpoint_hourly(config: Config, instance_type: str | None, count: int) -> float:
    """For status: USD/hour of a live endpoint (serverless: the table's 'serverless' entry)."""
    return hourly(config, instance_type or "serverless", count) or 0.0


def resource_hourly(config: Config, kind: str, meta: dict[str, Any], instance_type: str | None = None) -> float:
    """For status: USD/hour of a resource the ledger recorded (its meta says what it ran on;
    the config's instance types otherwise), rounded to cents' hundredths."""
    sm = config.sagemaker
    if kind == "endpoint":
        if meta.get("serverless"):
            return sm.prices.get("serverless", 0.0)
        use = instance_type or meta.get("instance_type") or sm.instance_type.endpoint
        count = meta.get("instance_count") or sm.endpoint_instance_count
    elif kind == "transform-job":
        use = meta.get("instance_type") or config.transform.instance_type
        count = meta.get("instance_count") or config.transform.instance_count
    elif kind == "tuning-job":
        use = meta.get("instance_type") or sm.instance_type.tune
        count = meta.get("max_parallel_jobs") or config.tune.max_parallel_jobs
    else:
        use = meta.get("instance_type") or sm.instance_type.train
        count = meta.get("instance_count") or sm.instance_count
    return round(hourly(config, use, int(count)) or 0.0, 4)


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
