"""Dry runs call nothing: no connection is opened, no name is even looked up, nothing is printed.

The guard below replaces the socket functions every HTTP client ends in (botocore, requests,
urllib3, the SDK's telemetry): one attempt anywhere fails the test.
"""

from __future__ import annotations

import socket
from datetime import datetime, timezone

import pytest

from dogbreed.aws.requests import DryRunViolation, RecordingClient
from dogbreed.aws.session import AwsSession
from dogbreed.backends.base import DeployRequest, TrainingRequest, TuningRequest
from dogbreed.config.flags import hyperparameters
from dogbreed.errors import ConfigError
from tests.backends.sagemaker.conftest import BUCKET, DATASET, DEBUGGER_CONTAINER, make_backend, sm_config


@pytest.fixture
def no_network(monkeypatch):
    attempts: list[str] = []

    def refuse(what):
        def call(*args, **kwargs):
            attempts.append(f"{what}{args[1:2] or args[:1]}")
            raise OSError(f"dry run opened the network: {what}")

        return call

    monkeypatch.setattr(socket.socket, "connect", refuse("connect"))
    monkeypatch.setattr(socket.socket, "connect_ex", refuse("connect_ex"))
    monkeypatch.setattr(socket, "create_connection", refuse("create_connection"))
    monkeypatch.setattr(socket, "getaddrinfo", refuse("getaddrinfo"))
    return attempts


def _plans(config):
    backend = make_backend(config)
    training = TrainingRequest("dogbreed-train-1", config, DATASET, hyperparameters(config))
    deploy = DeployRequest("dogbreed", f"s3://{BUCKET}/m/model.tar.gz", config, datetime(2030, 1, 1, tzinfo=timezone.utc))
    return [
        backend.plan_training(training),
        backend.plan_tuning(TuningRequest("dogbreed-tune-1", config, DATASET)),
        backend.plan_deploy(deploy),
    ]


def test_plans_open_no_connection_against_moto(tmp_path, aws_env, no_network, capfd):
    # Debugger and profiler on: the most SDK code paths (rule images, profiler defaults).
    config = sm_config(tmp_path, "sagemaker.debugger=true", "sagemaker.profiler=true", "sagemaker.spot=true", *DEBUGGER_CONTAINER)
    training, tuning, deploy = _plans(config)
    assert no_network == []
    assert set(training["requests"]) == {"CreateTrainingJob"}
    assert set(tuning["requests"]) == {"CreateHyperParameterTuningJob"}
    assert set(deploy["requests"]) == {"CreateModel", "CreateEndpointConfig", "CreateEndpoint"}
    assert training["est_cost"] == pytest.approx(0.736 * 0.5)
    assert tuning["est_cost"] == pytest.approx(0.736 * 0.5 * 8)
    out, _ = capfd.readouterr()
    assert out == ""  # stdout is reserved for --json


def test_plans_need_no_credentials_and_never_ask_instance_metadata(tmp_path, monkeypatch, no_network):
    """Without credentials botocore would try the container and EC2 metadata endpoints."""
    for name in list(__import__("os").environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.aws files either
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    _plans(sm_config(tmp_path))
    assert no_network == []


def test_without_a_bucket_the_plan_names_the_sdk_default_bucket_from_the_role(tmp_path, aws_env, no_network):
    config = sm_config(tmp_path)
    config = config.model_copy(update={"sagemaker": config.sagemaker.model_copy(update={"bucket": None})})
    plan = make_backend(config).plan_training(TrainingRequest("dogbreed-train-1", config, DATASET, hyperparameters(config)))
    output = plan["requests"]["CreateTrainingJob"]["OutputDataConfig"]["S3OutputPath"]
    assert output == "s3://sagemaker-us-east-1-123456789012/dogbreed/jobs/"
    assert no_network == []


def test_a_plan_without_a_role_says_what_to_set(tmp_path, aws_env):
    config = sm_config(tmp_path)
    config = config.model_copy(update={"sagemaker": config.sagemaker.model_copy(update={"role": None})})
    with pytest.raises(ConfigError, match="sagemaker.role"):
        make_backend(config).plan_training(TrainingRequest("dogbreed-train-1", config, DATASET, hyperparameters(config)))


def test_the_recorder_refuses_any_call_but_the_creates_when_dry(aws_env):
    from dogbreed.config.schema import SageMakerConfig

    aws = AwsSession(SageMakerConfig(region="us-east-1"), offline=True)
    recorder = RecordingClient(aws.client("sagemaker"), dry_run=True)
    with pytest.raises(DryRunViolation, match="DescribeTrainingJob"):
        recorder.describe_training_job(TrainingJobName="x")
    assert recorder.create_endpoint(EndpointName="e", EndpointConfigName="e") == {
        "EndpointArn": "arn:aws:sagemaker:us-east-1:000000000000:endpoint/e"
    }
    # Requests are checked against the service model, as botocore would before sending.
    with pytest.raises(Exception, match="Missing required parameter"):
        recorder.create_endpoint(EndpointName="e")
