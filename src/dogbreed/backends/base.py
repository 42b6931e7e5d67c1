"""What a backend does, as data in and data out, so workflows never care where work runs.

Both backends (local.py, sagemaker.py) implement `Backend`. Requests are built by the
workflows from the config; outcomes are what the JSON answers of DESIGN section 3 are made of.
Every method that would cost money has a `plan_*` twin that returns the exact requests and
calls nothing billable (`--dry-run`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from dogbreed.config import Config

LogSink = Callable[[str], None]


@dataclass(frozen=True)
class TrainingRequest:
    name: str
    config: Config
    dataset_uri: str
    hyperparameters: dict[str, Any]  # flag name -> value, exactly as train.py receives them
    manifest_sha256: str | None = None
    parent: str | None = None  # the tuning job this trial belongs to
    max_batches: int | None = None  # pre-flight: run this many batches per split only


@dataclass
class TrainingOutcome:
    name: str
    state: str  # InProgress | Completed | Failed | Stopped
    model_uri: str | None = None  # model.tar.gz: a local path or s3:// URI
    output_uri: str | None = None  # the job's output data (records, logs): folder or output.tar.gz
    metrics: dict[str, float] = field(default_factory=dict)  # final: valid_acc, valid_loss, test_acc, ...
    history: list[dict[str, float]] = field(default_factory=list)  # one dict per epoch line
    failure: str | None = None
    log_uri: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "training_job": self.name,
            "state": self.state,
            "model_uri": self.model_uri,
            "output_uri": self.output_uri,
            "metrics": self.metrics,
            "history": self.history,
            "failure": self.failure,
            "log_uri": self.log_uri,
        }


@dataclass(frozen=True)
class DeployRequest:
    endpoint_name: str
    model_uri: str  # model.tar.gz or a model dir
    config: Config
    expires_at: datetime
    training_job: str | None = None


@dataclass
class EndpointInfo:
    name: str
    backend: str
    state: str  # creating | in-service | failed | gone
    model_uri: str | None = None
    url: str | None = None  # local
    arn: str | None = None  # sagemaker
    expires_at: datetime | None = None
    created_at: datetime | None = None
    instance_type: str | None = None
    est_cost_per_hour: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "endpoint": self.name,
            "backend": self.backend,
            "state": self.state,
            "model_uri": self.model_uri,
            "url": self.url,
            "arn": self.arn,
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "instance_type": self.instance_type,
            "est_cost_per_hour": self.est_cost_per_hour,
            **self.extra,
        }


class Backend(Protocol):
    name: str
    config: Config

    # Training: one job of source_dir/train.py.
    def plan_training(self, request: TrainingRequest) -> dict[str, Any]: ...

    def start_training(self, request: TrainingRequest) -> None: ...

    def wait_training(self, name: str, on_log: LogSink | None = None) -> TrainingOutcome: ...

    def describe_training(self, name: str) -> TrainingOutcome: ...

    # Serving: an endpoint with SageMaker's HTTP contract.
    def plan_deploy(self, request: DeployRequest) -> dict[str, Any]: ...

    def deploy(self, request: DeployRequest, wait: bool = True) -> EndpointInfo: ...

    def invoke(self, endpoint: str, body: bytes, content_type: str, accept: str = "application/json") -> bytes: ...

    def describe_endpoint(self, endpoint: str) -> EndpointInfo: ...  # state "gone" when it no longer exists

    def delete_endpoint(self, endpoint: str) -> bool: ...  # False when there was nothing to delete
