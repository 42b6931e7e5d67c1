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
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

from dogbreed.aws.client_errors import code_of
from dogbreed.progress import PROGRESS_INTERVAL_S, ProgressLines

TRAINING_LOG_GROUP = "/aws/sagemaker/TrainingJobs"
TRAINING_DONE = ("Completed", "Failed", "Stopped")
TUNING_DONE = ("Completed", "Failed", "Stopped")
ENDPOINT_SETTLED = ("InService", "Failed", "OutOfService")
TRANSFORM_DONE = ("Completed", "Failed", "Stopped")

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


@dataclass(frozen=True)
class Seen:
    """One look at a describe answer: what a change of is told, the word the heartbeat line
    carries, the line told on a change, and whether the work has ended."""

    state: Hashable
    status: str
    line: str
    done: bool


def _poll(
    description: str,
    describe: Callable[[], dict[str, Any]],
    look: Callable[[dict[str, Any], ProgressLines], Seen],
    *,
    on_status: Say,
    poll_seconds: float,
    heartbeat_s: float,
    each: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """The one polling loop: describe, tell a change of state, run `each` (a log read), stop
    when done, else sleep; a heartbeat line every heartbeat_s while the state stays. Returns
    the last describe."""
    progress = ProgressLines(description, None, on_status, heartbeat_s, announce=False)
    with progress:
        told: Hashable = object()  # equal to no state: the first look is always told
        while True:
            described = describe()
            seen = look(described, progress)
            progress.status(seen.status)
            if seen.state != told:
                on_status(seen.line)
                told = seen.state
            if each is not None:
                each()
            if seen.done:
                return described
            time.sleep(poll_seconds)


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

    def look(describe: dict[str, Any], _progress: ProgressLines) -> Seen:
        status = (describe["TrainingJobStatus"], describe.get("SecondaryStatus", ""))
        message = describe.get("SecondaryStatusTransitions", [{}])[-1].get("StatusMessage", "")
        line = f"{name}: {status[0]} / {status[1]}" + (f" - {message}" if message else "")
        return Seen(status, " / ".join(status), line, status[0] in TRAINING_DONE)

    def read_logs() -> None:
        for line in logs.read(on_status) if logs is not None else ():
            if on_log:
                on_log(line)

    return _poll(
        f"training job {name}",
        lambda: sagemaker_client.describe_training_job(TrainingJobName=name),
        look,
        on_status=on_status,
        poll_seconds=poll_seconds,
        heartbeat_s=heartbeat_s,
        each=read_logs,
    )


def follow_tuning_job(
    sagemaker_client: Any, name: str, *, on_status: Say, poll_seconds: float, heartbeat_s: float = PROGRESS_INTERVAL_S
) -> dict[str, Any]:
    def look(describe: dict[str, Any], progress: ProgressLines) -> Seen:
        counters = describe.get("TrainingJobStatusCounters", {})
        status = describe["HyperParameterTuningJobStatus"]
        limits = describe.get("HyperParameterTuningJobConfig", {}).get("ResourceLimits", {})
        progress.total = limits.get("MaxNumberOfTrainingJobs")
        progress.update(sum(counters.get(key, 0) for key in ("Completed", "NonRetryableError", "Stopped")))
        counts = ", ".join(f"{key} {value}" for key, value in sorted(counters.items()) if value)
        line = f"{name}: {status}" + (f" (trials: {counts})" if counts else "")
        return Seen((status, tuple(sorted(counters.items()))), status, line, status in TUNING_DONE)

    return _poll(
        f"tuning job {name}",
        lambda: sagemaker_client.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name),
        look,
        on_status=on_status,
        poll_seconds=poll_seconds,
        heartbeat_s=heartbeat_s,
    )


def follow_endpoint(
    sagemaker_client: Any, name: str, *, on_status: Say, poll_seconds: float, heartbeat_s: float = PROGRESS_INTERVAL_S
) -> dict[str, Any]:
    def look(describe: dict[str, Any], _progress: ProgressLines) -> Seen:
        status = describe["EndpointStatus"]
        return Seen(status, status, f"endpoint {name}: {status}", status in ENDPOINT_SETTLED)

    return _poll(
        f"endpoint {name}",
        lambda: sagemaker_client.describe_endpoint(EndpointName=name),
        look,
        on_status=on_status,
        poll_seconds=poll_seconds,
        heartbeat_s=heartbeat_s,
    )


def follow_transform_job(
    sagemaker_client: Any, name: str, *, on_status: Say, poll_seconds: float, heartbeat_s: float = PROGRESS_INTERVAL_S
) -> dict[str, Any]:
    """Poll DescribeTransformJob until the Batch Transform job ends; returns the last describe."""

    def look(describe: dict[str, Any], _progress: ProgressLines) -> Seen:
        status = describe["TransformJobStatus"]
        reason = describe.get("FailureReason")
        line = f"transform job {name}: {status}" + (f" - {reason}" if reason else "")
        return Seen(status, status, line, status in TRANSFORM_DONE)

    return _poll(
        f"transform job {name}",
        lambda: sagemaker_client.describe_transform_job(TransformJobName=name),
        look,
        on_status=on_status,
        poll_seconds=poll_seconds,
        heartbeat_s=heartbeat_s,
    )
