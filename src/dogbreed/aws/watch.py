"""Following SageMaker work until it ends: job logs from CloudWatch, status transitions from
Describe* polling. A status that does not change for a while still gets a line at least every
heartbeat_s (ProgressLines: how long, and for a tuning job finished trials, rate and ETA), so
a job that runs for an hour never looks hung.

The SDK's own `logs_for_job` prints to stdout (which `--json` reserves for the answer), so
we read the same log group ourselves and hand each line to the caller. When the logs cannot
be read (no permission, not created yet) the status transitions still arrive, and the job's
outcome never depends on the logs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dogbreed.aws.client_errors import code_of
from dogbreed.progress import PROGRESS_INTERVAL_S, ProgressLines

TRAINING_LOG_GROUP = "/aws/sagemaker/TrainingJobs"
TRAINING_DONE = ("Completed", "Failed", "Stopped")
TUNING_DONE = ("Completed", "Failed", "Stopped")
ENDPOINT_SETTLED = ("InService", "Failed", "OutOfService")

Say = Callable[[str], None]


@dataclass
class LogTail:
    """New lines of every log stream of one job (one stream per host and attempt)."""

    logs: Any  # boto3 CloudWatch Logs client
    job: str
    group: str = TRAINING_LOG_GROUP
    usable: bool = True
    _tokens: dict[str, str | None] = field(default_factory=dict)

    def read(self, warn: Say) -> list[str]:
        if not self.usable:
            return []
        from botocore.exceptions import BotoCoreError, ClientError

        lines: list[str] = []
        try:
            streams = self.logs.describe_log_streams(logGroupName=self.group, logStreamNamePrefix=f"{self.job}/")
            for stream in sorted(s["logStreamName"] for s in streams.get("logStreams", [])):
                lines += self._read_stream(stream)
        except ClientError as exc:
            if code_of(exc) == "ResourceNotFoundException":
                return lines  # no log group or stream yet: the job has not started logging
            self.usable = False
            warn(f"cannot read the job's CloudWatch logs ({code_of(exc) or exc}); following its status only")
        except BotoCoreError as exc:
            self.usable = False
            warn(f"cannot read the job's CloudWatch logs ({exc}); following its status only")
        return lines

    def _read_stream(self, stream: str) -> list[str]:
        lines: list[str] = []
        while True:
            kwargs: dict[str, Any] = {"logGroupName": self.group, "logStreamName": stream, "startFromHead": True}
            token = self._tokens.get(stream)
            if token:
                kwargs["nextToken"] = token
            page = self.logs.get_log_events(**kwargs)
            lines += [event["message"].rstrip("\n") for event in page.get("events", [])]
            following = page.get("nextForwardToken")
            done = following == token or not page.get("events")
            self._tokens[stream] = following
            if done:
                return lines


def follow_training_job(
    sagemaker_client: Any,
    logs: LogTail | None,
    name: str,
    *,
    on_log: Say | None,
    on_status: Say,
    poll_seconds: float,
    heartbeat_s: float = PROGRESS_INTERVAL_S,
) -> dict[str, Any]:
    """Poll DescribeTrainingJob (and the logs) until the job ends; returns the last describe."""
    progress = ProgressLines(f"training job {name}", None, on_status, heartbeat_s, announce=False)
    with progress:
        return _follow_training_job(sagemaker_client, logs, name, on_log, on_status, poll_seconds, progress)


def _follow_training_job(
    sagemaker_client: Any, logs: LogTail | None, name: str, on_log: Say | None, on_status: Say, poll_seconds: float, progress
) -> dict[str, Any]:
    seen_status: tuple[str, str] | None = None
    while True:
        describe = sagemaker_client.describe_training_job(TrainingJobName=name)
        status = (describe["TrainingJobStatus"], describe.get("SecondaryStatus", ""))
        progress.status(" / ".join(status))
        if status != seen_status:
            message = describe.get("SecondaryStatusTransitions", [{}])[-1].get("StatusMessage", "")
            on_status(f"{name}: {status[0]} / {status[1]}" + (f" - {message}" if message else ""))
            seen_status = status
        if logs is not None:
            for line in logs.read(on_status):
                if on_log:
                    on_log(line)
        if status[0] in TRAINING_DONE:
            return describe
        time.sleep(poll_seconds)


def follow_tuning_job(
    sagemaker_client: Any, name: str, *, on_status: Say, poll_seconds: float, heartbeat_s: float = PROGRESS_INTERVAL_S
) -> dict[str, Any]:
    progress = ProgressLines(f"tuning job {name}", None, on_status, heartbeat_s, announce=False)
    with progress:
        return _follow_tuning_job(sagemaker_client, name, on_status, poll_seconds, progress)


def _follow_tuning_job(sagemaker_client: Any, name: str, on_status: Say, poll_seconds: float, progress) -> dict[str, Any]:
    seen: tuple[str, tuple[tuple[str, int], ...]] | None = None
    while True:
        describe = sagemaker_client.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
        counters = describe.get("TrainingJobStatusCounters", {})
        state = (describe["HyperParameterTuningJobStatus"], tuple(sorted(counters.items())))
        limits = describe.get("HyperParameterTuningJobConfig", {}).get("ResourceLimits", {})
        progress.total = limits.get("MaxNumberOfTrainingJobs")
        progress.update(sum(counters.get(key, 0) for key in ("Completed", "NonRetryableError", "Stopped")))
        progress.status(state[0])
        if state != seen:
            counts = ", ".join(f"{key} {value}" for key, value in sorted(counters.items()) if value)
            on_status(f"{name}: {state[0]}" + (f" (trials: {counts})" if counts else ""))
            seen = state
        if state[0] in TUNING_DONE:
            return describe
        time.sleep(poll_seconds)


def follow_endpoint(
    sagemaker_client: Any, name: str, *, on_status: Say, poll_seconds: float, heartbeat_s: float = PROGRESS_INTERVAL_S
) -> dict[str, Any]:
    progress = ProgressLines(f"endpoint {name}", None, on_status, heartbeat_s, announce=False)
    with progress:
        return _follow_endpoint(sagemaker_client, name, on_status, poll_seconds, progress)


def _follow_endpoint(sagemaker_client: Any, name: str, on_status: Say, poll_seconds: float, progress) -> dict[str, Any]:
    seen = None
    while True:
        describe = sagemaker_client.describe_endpoint(EndpointName=name)
        status = describe["EndpointStatus"]
        progress.status(status)
        if status != seen:
            on_status(f"endpoint {name}: {status}")
            seen = status
        if status in ENDPOINT_SETTLED:
            return describe
        time.sleep(poll_seconds)
