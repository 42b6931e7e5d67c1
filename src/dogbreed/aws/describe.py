"""What SageMaker's Describe* answers mean in dogbreed's terms. Pure: the responses in,
plain data out (the fields of the backends' TrainingOutcome and EndpointInfo, and the tune
answer), so nothing here knows the layers above.

A tuning job's answer has `params` keyed like tune.ranges (train.* names, typed), whatever
SageMaker called them on the wire.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from dogbreed.aws import pricing
from dogbreed.aws.tags import EXPIRES_AT
from dogbreed.config import Config
from dogbreed.config.flags import flag_for
from dogbreed.config.schema import TrainConfig
from dogbreed.jobspec import kept_epoch_metrics, metric_spec

ENDPOINT_STATES = {
    "Creating": "creating",
    "Updating": "creating",
    "SystemUpdating": "creating",
    "RollingBack": "creating",
    "InService": "in-service",
    "Deleting": "deleting",
    "Failed": "failed",
    "OutOfService": "failed",
}


def log_console_url(region: str, job: str) -> str:
    """Where people read a training job's logs (the link the SDK prints too)."""
    return (
        f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}"
        f"#logStream:group=/aws/sagemaker/TrainingJobs;prefix={job};streamFilter=typeLogStreamPrefix"
    )


def training_outcome(describe: Mapping[str, Any], region: str, history: list[dict[str, float]] | None = None) -> dict[str, Any]:
    """DescribeTrainingJob -> the fields of a TrainingOutcome: final metrics from FinalMetricDataList (the last
    value SageMaker's regexes read for each metric), the model from ModelArtifacts."""
    name = describe["TrainingJobName"]
    state = describe["TrainingJobStatus"]
    epoch_key = metric_spec().epoch_key
    metrics = {
        m["MetricName"]: float(m["Value"]) for m in describe.get("FinalMetricDataList", []) if m["MetricName"] != epoch_key
    }
    output = describe.get("OutputDataConfig", {}).get("S3OutputPath", "").rstrip("/")
    return {
        "name": name,
        "state": "InProgress" if state == "Stopping" else state,
        "model_uri": describe.get("ModelArtifacts", {}).get("S3ModelArtifacts") if state == "Completed" else None,
        "output_uri": f"{output}/{name}/output/output.tar.gz" if output else None,
        "metrics": kept_epoch_metrics(metrics, history or []),
        "history": history or [],
        "failure": describe.get("FailureReason"),
        "log_uri": log_console_url(region, name),
    }


def endpoint_info(
    config: Config,
    endpoint: Mapping[str, Any],
    endpoint_config: Mapping[str, Any] | None,
    model: Mapping[str, Any] | None,
    tags: Mapping[str, str],
) -> dict[str, Any]:
    """DescribeEndpoint (+ its config, its model and its tags) -> the fields of an EndpointInfo."""
    planned = ((endpoint_config or {}).get("ProductionVariants") or [{}])[0]
    live = (endpoint.get("ProductionVariants") or [{}])[0]
    instance_type = planned.get("InstanceType")
    count = live.get("CurrentInstanceCount") or planned.get("InitialInstanceCount") or 1
    expires = tags.get(EXPIRES_AT)
    status = endpoint["EndpointStatus"]
    return {
        "name": endpoint["EndpointName"],
        "backend": "sagemaker",
        "state": ENDPOINT_STATES.get(status, status.lower()),
        "model_uri": (model or {}).get("PrimaryContainer", {}).get("ModelDataUrl"),
        "arn": endpoint["EndpointArn"],
        "expires_at": datetime.fromisoformat(expires) if expires else None,
        "created_at": endpoint.get("CreationTime"),
        "instance_type": instance_type or "serverless",
        "est_cost_per_hour": pricing.endpoint_hourly(config, instance_type, count),
        "extra": {
            "model": planned.get("ModelName"),
            "endpoint_config": endpoint["EndpointConfigName"],
            "failure": endpoint.get("FailureReason"),
        },
    }


# --- tuning jobs ---------------------------------------------------------------------------


def _decode(raw: str) -> Any:
    # The SDK JSON-encodes categorical values ('"32"'); continuous and integer ones are bare.
    try:
        return json.loads(raw)
    except (TypeError, ValueError):
        return raw


def _typed(key: str, value: Any) -> Any:
    annotation = TrainConfig.model_fields[key].annotation
    if annotation is int:
        return int(float(value))
    if annotation is float:
        return float(value)
    return value


def _train_key_by_flag() -> dict[str, str]:
    found = {}
    for key in TrainConfig.model_fields:
        try:
            found[flag_for(key)] = key
        except KeyError:
            continue  # a train.* setting that is not a flag of train.py
    return found


def params_from_hyperparameters(tuned: Mapping[str, str]) -> dict[str, Any]:
    """{'batch-size': '"32"', 'lr': '0.01'} -> {'batch_size': 32, 'lr': 0.01}.

    Needs no config: a tuning job described later, from another machine, reads the same."""
    by_flag = _train_key_by_flag()
    return {by_flag[flag]: _typed(by_flag[flag], _decode(raw)) for flag, raw in tuned.items() if flag in by_flag}


def trial_from_summary(summary: Mapping[str, Any]) -> dict[str, Any]:
    """One TrainingJobSummaries entry of ListTrainingJobsForHyperParameterTuningJob."""
    metric = summary.get("FinalHyperParameterTuningJobObjectiveMetric") or {}
    return {
        "name": summary["TrainingJobName"],
        "params": params_from_hyperparameters(summary.get("TunedHyperParameters", {})),
        "objective": metric.get("Value"),
        "status": summary.get("TrainingJobStatus"),
    }


def best_trial(trials: Iterable[Mapping[str, Any]], objective_type: str, named: str | None = None) -> dict[str, Any] | None:
    """The trial SageMaker named best when it is among `trials`, else the best objective."""
    done = [t for t in trials if t["status"] == "Completed" and t["objective"] is not None]
    for trial in done:
        if trial["name"] == named:
            return {"name": trial["name"], "params": trial["params"], "objective": trial["objective"]}
    if not done:
        return None
    pick = max if objective_type == "Maximize" else min
    trial = pick(done, key=lambda t: t["objective"])
    return {"name": trial["name"], "params": trial["params"], "objective": trial["objective"]}


def tuning_answer(describe: Mapping[str, Any], summaries: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """DescribeHyperParameterTuningJob + its trial summaries -> the tune answer."""
    trials = sorted((trial_from_summary(s) for s in summaries), key=lambda t: t["name"])
    named = (describe.get("BestTrainingJob") or {}).get("TrainingJobName")
    job_config = describe.get("HyperParameterTuningJobConfig", {})
    objective = job_config.get("HyperParameterTuningJobObjective", {})
    return {
        "tuning_job": describe["HyperParameterTuningJobName"],
        "backend": "sagemaker",
        "state": describe["HyperParameterTuningJobStatus"],
        "strategy": job_config.get("Strategy"),
        "objective": {"metric": objective.get("MetricName"), "type": objective.get("Type")},
        "trials": trials,
        "best": best_trial(trials, objective.get("Type", "Maximize"), named),
        "counters": describe.get("TrainingJobStatusCounters", {}),
        "failure": describe.get("FailureReason") or None,
    }
