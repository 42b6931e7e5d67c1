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
from pathlib import Path
from typing import Any, Protocol

from dogbreed.config import Config
from dogbreed.errors import DogbreedError
from dogbreed.ledger import Resource
from dogbreed.serving.batch import BatchImage

# The ledger's backend for what this tool writes on this machine whatever backend ran the
# work (a report's HTML): the local backend's, so status lists it as local and free.
ON_THIS_MACHINE = "local"

LogSink = Callable[[str], None]
TrialsSink = Callable[[list[Resource]], None]  # a local search's trial rows, as they change


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


@dataclass
class JobRecords:
    """A training job's records (records.jsonl) on this machine, and what its backend's own
    tooling judged (SageMaker Debugger): what `report` reads."""

    path: Path | None  # records.jsonl here; None when the job left none
    source: str | None  # where they came from: the job's file, or its output.tar.gz
    verdicts: list[Any] = field(default_factory=list)  # dogbreed.report.rules.RuleResult
    links: list[tuple[str, str]] = field(default_factory=list)  # (title, file beside the report)
    notes: list[str] = field(default_factory=list)
    status: str | None = None  # the job's state as its backend reports it


@dataclass(frozen=True)
class TuningRequest:
    name: str  # at most 32 characters on SageMaker (dogbreed.resource_names.unique_name("tune"))
    config: Config  # tune.* says what to search; train.* gives the static values
    dataset_uri: str
    manifest_sha256: str | None = None
    fingerprint: str | None = None  # what makes two runs the same search (workflows/tune.py)
    resumed: bool = False  # the ledger knows this job: resume it (locally) or follow it


@dataclass
class TuningStarted:
    uri: str | None = None  # where the job lives, for the ledger (the local tuning folder)
    extra: dict[str, Any] = field(default_factory=dict)  # what a --no-wait answer adds


class TuningStopped(KeyboardInterrupt):
    """Ctrl-C stopped a search before its budget was spent; `answer` is where it stands."""

    def __init__(self, answer: dict[str, Any]) -> None:
        super().__init__()
        self.answer = answer


class TuningFailed(DogbreedError):
    """Every trial failed; `answer` says which and why."""

    def __init__(self, message: str, answer: dict[str, Any]) -> None:
        super().__init__(message)
        self.answer = answer


@dataclass(frozen=True)
class DeployRequest:
    endpoint_name: str
    model_uri: str  # model.tar.gz or a model dir
    config: Config
    expires_at: datetime
    training_job: str | None = None
    # What the ledger says serves under this name now, when it is live there ({"model": ...,
    # "endpoint_config": ...}): a dry run plans an in-place update from it (it asks nobody);
    # a real deploy asks the backend itself.
    serving: dict[str, str] | None = None
    trust_code: bool = False  # serve a model whose code/ is not this dogbreed's handler (--trust-code)


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
    # What the backend needs recorded to find, ask and stop it later; not part of the answer.
    record: dict[str, Any] = field(default_factory=dict)

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


@dataclass(frozen=True)
class TransformRequest:
    """Batch scoring with no endpoint: every image of `images` (local files, listed by the
    workflow) and of `prefixes` (s3:// prefixes, as given) into the scores file `output`."""

    name: str  # the job's name (SageMaker: the transform job)
    config: Config
    model_uri: str  # model.tar.gz or a model dir
    output: Path  # the scores file (serving/scores_file.py)
    format: str  # csv | jsonl
    top_k: int
    images: tuple[BatchImage, ...] = ()
    prefixes: tuple[str, ...] = ()
    restart: bool = False  # start the scores file over instead of resuming it
    training_job: str | None = None
    trust_code: bool = False


@dataclass
class TransformOutcome:
    name: str
    backend: str
    state: str  # InProgress | Completed | Failed | Stopped
    model_uri: str | None = None
    output: str | None = None  # the scores file, once written
    scored: int = 0  # rows written by this run
    skipped: int = 0  # images the scores file already had (a resumed run)
    errors: list[dict[str, str]] = field(default_factory=list)  # {"image", "error"}, this run's and earlier ones
    input_uri: str | None = None  # SageMaker: the job's S3 input and output
    output_uri: str | None = None
    instance_type: str | None = None
    instance_count: int = 0
    est_cost_per_hour: float = 0.0
    failure: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "transform_job": self.name,
            "backend": self.backend,
            "state": self.state,
            "model_uri": self.model_uri,
            "output": self.output,
            "scored": self.scored,
            "skipped": self.skipped,
            "errors": self.errors,
            "input_uri": self.input_uri,
            "output_uri": self.output_uri,
            "instance_type": self.instance_type,
            "instance_count": self.instance_count,
            "est_cost_per_hour": self.est_cost_per_hour,
            "failure": self.failure,
            **self.extra,
        }


class Backend(Protocol):
    name: str
    config: Config
    # What workflows may rely on, instead of asking a backend its name:
    runs_here: bool  # jobs run as processes of this machine, so a local path is read by them
    resumes_jobs: bool  # an unfinished job keeps its name and checkpoints: `train` again resumes it

    # Datasets: where `ingest` stores one (dogbreed.data.stores.DatasetStore).
    def default_dataset_uri(self, name: str) -> str: ...

    def dataset_store(self, uri: str) -> Any: ...

    # Training: one job of source_dir/train.py.
    def plan_training(self, request: TrainingRequest) -> dict[str, Any]: ...

    def start_training(self, request: TrainingRequest) -> None: ...

    def wait_training(self, name: str, on_log: LogSink | None = None) -> TrainingOutcome: ...

    def describe_training(self, name: str) -> TrainingOutcome: ...

    # A job the ledger does not know (its row lost) that this backend still keeps under the
    # request's name: (the settings it ran with, the request's), alike in form; None if none.
    def unrecorded_job(self, request: TrainingRequest) -> tuple[dict[str, Any], dict[str, Any]] | None: ...

    def job_records(self, job: Resource, dest: Path) -> JobRecords: ...  # fetched into dest if remote

    # Tuning: a search over tune.ranges whose trials are jobs of train.py. The answer is the
    # tune command's (DESIGN section 3): tuning_job, strategy, trials, best, ...
    def plan_tuning(self, request: TuningRequest) -> dict[str, Any]: ...

    def start_tuning(self, request: TuningRequest, wait: bool = True) -> TuningStarted: ...

    def wait_tuning(self, request: TuningRequest, on_trials: TrialsSink | None = None) -> dict[str, Any]: ...

    # Serving: an endpoint with SageMaker's HTTP contract.
    def plan_deploy(self, request: DeployRequest) -> dict[str, Any]: ...

    # on_created gets the endpoint as soon as it exists (state creating), and again when what
    # was created changes before it is ready: the deploy workflow records it there (intent first).
    def deploy(
        self, request: DeployRequest, wait: bool = True, on_created: Callable[[EndpointInfo], None] | None = None
    ) -> EndpointInfo: ...

    def invoke(self, endpoint: str, body: bytes, content_type: str, accept: str = "application/json") -> bytes: ...

    def describe_endpoint(self, endpoint: str) -> EndpointInfo: ...  # state "gone" when it no longer exists

    def delete_endpoint(self, endpoint: str) -> bool: ...  # False when there was nothing to delete

    # Batch scoring with no endpoint: in this process (local) or a Batch Transform job
    # (SageMaker), which ends by itself. on_created gets a job that bills as soon as it
    # exists (the workflow records it); wait=False returns while it runs.
    def plan_transform(self, request: TransformRequest) -> dict[str, Any]: ...

    def transform(
        self, request: TransformRequest, wait: bool = True, on_created: Callable[[TransformOutcome], None] | None = None
    ) -> TransformOutcome: ...

    def describe_transform(self, name: str) -> TransformOutcome: ...  # state "gone" when unknown

    def stop_transform(self, name: str) -> bool: ...  # False when it was not running
