"""--wait on SageMaker: job logs from CloudWatch, status transitions, the outcome from
DescribeTrainingJob, and what happens when the logs cannot be read or the user presses Ctrl-C."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from dogbreed.aws.watch import LogTail, follow_training_job
from dogbreed.backends.base import TrainingRequest
from dogbreed.config.flags import hyperparameters
from dogbreed.errors import NotFoundError
from tests.backends.sagemaker.conftest import BUCKET, DATASET, make_backend, sm_config

JOB = "dogbreed-train-261127-101500-a1b2"
LOG_LINES = [
    "Invoking script with the following command: /opt/conda/bin/python train.py --arch mobilenet_v2",
    "epoch=1 train_loss=2.1 train_acc=0.4 valid_loss=1.5 valid_acc=0.55",
    "epoch=2 train_loss=1.2 train_acc=0.7 valid_loss=0.9 valid_acc=0.8125",
    "test_loss=0.95 test_acc=0.79 best_epoch=2 valid_loss=0.9 valid_acc=0.8125",
]


def test_wait_streams_cloudwatch_lines_and_ends_with_the_jobs_outcome(tmp_path, s3, aws_env):
    import boto3

    config = sm_config(tmp_path)
    backend = make_backend(config)
    backend.start_training(TrainingRequest(JOB, config, DATASET, hyperparameters(config)))
    logs = boto3.client("logs", region_name="us-east-1")
    logs.create_log_group(logGroupName="/aws/sagemaker/TrainingJobs")
    stream = f"{JOB}/algo-1-1764238500"
    logs.create_log_stream(logGroupName="/aws/sagemaker/TrainingJobs", logStreamName=stream)
    stamp = int(datetime(2026, 11, 27, tzinfo=timezone.utc).timestamp() * 1000)
    logs.put_log_events(
        logGroupName="/aws/sagemaker/TrainingJobs",
        logStreamName=stream,
        logEvents=[{"timestamp": stamp + i, "message": line} for i, line in enumerate(LOG_LINES)],
    )
    seen: list[str] = []
    outcome = backend.wait_training(JOB, seen.append)
    assert seen == LOG_LINES
    assert outcome.state == "Completed"
    assert outcome.model_uri == f"s3://{BUCKET}/dogbreed/jobs/{JOB}/output/model.tar.gz"
    assert outcome.output_uri == f"s3://{BUCKET}/dogbreed/jobs/{JOB}/output/output.tar.gz"
    assert [row["valid_acc"] for row in outcome.history] == [0.55, 0.8125]
    assert outcome.log_uri.startswith("https://us-east-1.console.aws.amazon.com/cloudwatch/")
    assert any(line.startswith(f"{JOB}: Completed") for line in backend.reporter.lines)
    # --no-wait and a later describe: the same outcome, from DescribeTrainingJob alone.
    later = make_backend(config).describe_training(JOB)
    assert (later.state, later.model_uri) == ("Completed", outcome.model_uri)


def test_an_unknown_job_is_not_found(tmp_path, aws_env):
    backend = make_backend(sm_config(tmp_path))
    with pytest.raises(NotFoundError, match="not found on SageMaker"):
        backend.describe_training("dogbreed-train-nope")
    with pytest.raises(NotFoundError):
        backend.wait_training("dogbreed-train-nope")


class FakeSageMaker:
    """Answers DescribeTrainingJob from a script of (status, secondary status) steps."""

    def __init__(self, steps, interrupt_at: int | None = None) -> None:
        self.steps, self.interrupt_at, self.calls = list(steps), interrupt_at, []

    def describe_training_job(self, TrainingJobName):
        self.calls.append(("describe", TrainingJobName))
        if self.interrupt_at is not None and len(self.calls) == self.interrupt_at:
            raise KeyboardInterrupt
        status, secondary = self.steps[min(len(self.calls), len(self.steps)) - 1]
        return {
            "TrainingJobName": TrainingJobName,
            "TrainingJobStatus": status,
            "SecondaryStatus": secondary,
            "SecondaryStatusTransitions": [{"Status": secondary, "StatusMessage": f"{secondary.lower()} now"}],
            "OutputDataConfig": {"S3OutputPath": f"s3://{BUCKET}/dogbreed/jobs/"},
            "ModelArtifacts": {"S3ModelArtifacts": f"s3://{BUCKET}/dogbreed/jobs/{TrainingJobName}/output/model.tar.gz"},
            "FinalMetricDataList": [
                {"MetricName": "epoch", "Value": 2.0},
                {"MetricName": "valid_acc", "Value": 0.8125},
                {"MetricName": "valid_loss", "Value": 0.9},
                {"MetricName": "test_acc", "Value": 0.79},
            ],
        }

    def stop_training_job(self, TrainingJobName):
        self.calls.append(("stop", TrainingJobName))


class DeniedLogs:
    def __init__(self) -> None:
        self.calls = 0

    def describe_log_streams(self, **_):
        from botocore.exceptions import ClientError

        self.calls += 1
        raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "DescribeLogStreams")


def test_without_logs_the_status_transitions_still_arrive_in_order():
    steps = [("InProgress", "Starting"), ("InProgress", "Starting"), ("InProgress", "Training"), ("Completed", "Completed")]
    client, logs, said = FakeSageMaker(steps), DeniedLogs(), []
    describe = follow_training_job(client, LogTail(logs, JOB), JOB, on_log=None, on_status=said.append, poll_seconds=0)
    assert describe["TrainingJobStatus"] == "Completed"
    assert said == [
        f"{JOB}: InProgress / Starting - starting now",
        "cannot read the job's CloudWatch logs (AccessDeniedException); following its status only",
        f"{JOB}: InProgress / Training - training now",
        f"{JOB}: Completed / Completed - completed now",
    ]
    assert logs.calls == 1  # asked once, then left alone


def test_the_outcome_takes_final_metrics_from_describe(tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    backend = make_backend(sm_config(tmp_path))
    backend.__dict__["_sagemaker"] = FakeSageMaker([("Completed", "Completed")])
    outcome = backend.describe_training(JOB)
    assert outcome.metrics == {"valid_acc": 0.8125, "valid_loss": 0.9, "test_acc": 0.79}
    assert outcome.model_uri.endswith(f"/{JOB}/output/model.tar.gz")
    backend.__dict__["_sagemaker"] = FakeSageMaker([("Stopping", "Stopping")])
    stopping = backend.describe_training(JOB)
    assert (stopping.state, stopping.model_uri) == ("InProgress", None)


def test_ctrl_c_while_waiting_stops_the_job(tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    backend = make_backend(sm_config(tmp_path))
    fake = FakeSageMaker([("InProgress", "Training")], interrupt_at=3)
    backend.__dict__["_sagemaker"] = fake
    monkeypatch.setattr("dogbreed.backends.sagemaker.LogTail", lambda *a, **k: None)
    with pytest.raises(KeyboardInterrupt):
        backend.wait_training(JOB)
    assert fake.calls[-1] == ("stop", JOB)
