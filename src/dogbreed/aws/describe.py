"""What SageMaker's Describe* answers mean in dogbreed's terms: a TrainingOutcome, an
EndpointInfo. Pure: the responses in, dataclasses out."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from dogbreed.aws import pricing
from dogbreed.aws.tags import EXPIRES_AT
from dogbreed.backends.base import EndpointInfo, TrainingOutcome
from dogbreed.config import Config
from dogbreed.jobspec import metric_spec

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


def training_outcome(
    describe: Mapping[str, Any], region: str, history: list[dict[str, float]] | None = None
) -> TrainingOutcome:
    """DescribeTrainingJob -> TrainingOutcome: final metrics from FinalMetricDataList (the last
    value SageMaker's regexes read for each metric), the model from ModelArtifacts."""
    name = describe["TrainingJobName"]
    state = describe["TrainingJobStatus"]
    epoch_key = metric_spec().epoch_key
    metrics = {
        m["MetricName"]: float(m["Value"]) for m in describe.get("FinalMetricDataList", []) if m["MetricName"] != epoch_key
    }
    output = describe.get("OutputDataConfig", {}).get("S3OutputPath", "").rstrip("/")
    return TrainingOutcome(
        name=name,
        state="InProgress" if state == "Stopping" else state,
        model_uri=describe.get("ModelArtifacts", {}).get("S3ModelArtifacts") if state == "Completed" else None,
        output_uri=f"{output}/{name}/output/output.tar.gz" if output else None,
        metrics=metrics,
        history=history or [],
        failure=describe.get("FailureReason"),
        log_uri=log_console_url(region, name),
    )


def endpoint_info(
    config: Config,
    endpoint: Mapping[str, Any],
    endpoint_config: Mapping[str, Any] | None,
    model: Mapping[str, Any] | None,
    tags: Mapping[str, str],
) -> EndpointInfo:
    """DescribeEndpoint (+ its config, its model and its tags) -> EndpointInfo."""
    planned = ((endpoint_config or {}).get("ProductionVariants") or [{}])[0]
    live = (endpoint.get("ProductionVariants") or [{}])[0]
    instance_type = planned.get("InstanceType")
    count = live.get("CurrentInstanceCount") or planned.get("InitialInstanceCount") or 1
    expires = tags.get(EXPIRES_AT)
    status = endpoint["EndpointStatus"]
    return EndpointInfo(
        name=endpoint["EndpointName"],
        backend="sagemaker",
        state=ENDPOINT_STATES.get(status, status.lower()),
        model_uri=(model or {}).get("PrimaryContainer", {}).get("ModelDataUrl"),
        arn=endpoint["EndpointArn"],
        expires_at=datetime.fromisoformat(expires) if expires else None,
        created_at=endpoint.get("CreationTime"),
        instance_type=instance_type or "serverless",
        est_cost_per_hour=pricing.endpoint_hourly(config, instance_type, count),
        extra={
            "model": planned.get("ModelName"),
            "endpoint_config": endpoint["EndpointConfigName"],
            "failure": endpoint.get("FailureReason"),
        },
    )
