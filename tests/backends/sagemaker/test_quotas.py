"""Pre-flight quotas: Service Quotas (moto, seeded with SageMaker's quotas) against what the
command needs; one line per shortfall, a warning when quotas cannot be read."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from dogbreed.aws.preflight import PreflightError
from dogbreed.backends.base import DeployRequest, TrainingRequest, TuningRequest
from dogbreed.config.flags import hyperparameters
from tests.backends.sagemaker.conftest import (
    BUCKET,
    DATASET,
    make_backend,
    record_calls,
    sagemaker_quota,
    sm_config,
    upload_dataset,
)
from tests.backends.sagemaker.test_preflight import FakeRehearsal


@pytest.fixture(autouse=True)
def _on_moto_plus(aws_plus):
    """Before `s3` and `sagemaker_client`, so they reach the same server."""


JOB = "dogbreed-train-261127-101500-a1b2"
TRAIN = sagemaker_quota("L-TRAIN001", "ml.g4dn.xlarge for training job usage", 0)
SPOT = sagemaker_quota("L-SPOT0001", "ml.g4dn.xlarge for spot training job usage", 0)
ENDPOINT = sagemaker_quota("L-ENDPT001", "ml.m5.large for endpoint usage", 0)
CONSOLE = "https://us-east-1.console.aws.amazon.com/servicequotas/home/services/sagemaker/quotas"


def _backend(tmp_path, *sets: str):
    rehearsal = FakeRehearsal(tmp_path)
    config = sm_config(tmp_path, "sagemaker.preflight=true", *sets)
    backend = make_backend(config, rehearse=rehearsal)
    return backend, rehearsal, record_calls(backend.aws, "service-quotas")


def _training(config) -> TrainingRequest:
    return TrainingRequest(JOB, config, DATASET, hyperparameters(config))


def test_a_training_quota_of_zero_stops_the_job_with_the_command_to_raise_it(tmp_path, s3, sagemaker_client, seed_quotas):
    seed_quotas([TRAIN, SPOT, ENDPOINT])  # the defaults of a new account, never raised
    backend, rehearsal, calls = _backend(tmp_path)
    with pytest.raises(PreflightError) as caught:
        backend.start_training(_training(backend.config))
    assert caught.value.problems == [
        "quota 'ml.g4dn.xlarge for training job usage' is 0 in us-east-1 but 1 are needed (sagemaker.instance_count=1); "
        f"ask for more at {CONSOLE}/L-TRAIN001 or: aws service-quotas request-service-quota-increase --region us-east-1 "
        "--service-code sagemaker --quota-code L-TRAIN001 --desired-value 1"
    ]
    assert calls == [
        ("ListAWSDefaultServiceQuotas", {"ServiceCode": "sagemaker"}),
        ("GetServiceQuota", {"ServiceCode": "sagemaker", "QuotaCode": "L-TRAIN001"}),
    ]
    assert rehearsal.requests == []  # no rehearsal, no upload, no job
    assert s3.list_objects_v2(Bucket=BUCKET).get("KeyCount", 0) == 0
    assert sagemaker_client.list_training_jobs()["TrainingJobSummaries"] == []


def test_tuning_needs_parallel_trials_times_instances_of_the_spot_quota(tmp_path, s3, dogs_dir, seed_quotas):
    upload_dataset(s3, dogs_dir)
    seed_quotas([TRAIN, SPOT], applied={"L-SPOT0001": 2, "L-TRAIN001": 8})
    backend, rehearsal, calls = _backend(
        tmp_path, "sagemaker.spot=true", "sagemaker.instance_count=2", "tune.max_jobs=4", "tune.max_parallel_jobs=2"
    )
    request = TuningRequest("dogbreed-tune-a1b2", backend.config, DATASET)
    with pytest.raises(PreflightError) as caught:
        backend.start_tuning(request)
    (problem,) = caught.value.problems
    assert problem.startswith(
        "quota 'ml.g4dn.xlarge for spot training job usage' is 2 in us-east-1 but 4 are needed "
        "(tune.max_parallel_jobs=2 x sagemaker.instance_count=2)"
    )
    assert problem.endswith("--quota-code L-SPOT0001 --desired-value 4")
    assert calls[-1] == ("GetServiceQuota", {"ServiceCode": "sagemaker", "QuotaCode": "L-SPOT0001"})


def test_a_raised_quota_passes_and_the_rehearsal_runs(tmp_path, s3, dogs_dir, seed_quotas):
    upload_dataset(s3, dogs_dir)
    seed_quotas([TRAIN], applied={"L-TRAIN001": 1})
    backend, rehearsal, _ = _backend(tmp_path)
    backend.preflight_training(_training(backend.config))
    assert backend.reporter.lines[-1] == f"pre-flight passed (training job {JOB})"
    assert len(rehearsal.requests) == 1
    assert not [line for line in backend.reporter.lines if line.startswith("warning:")]


def test_a_caller_who_may_not_read_quotas_gets_a_warning_not_a_refusal(tmp_path, s3, dogs_dir, seed_quotas):
    upload_dataset(s3, dogs_dir)
    seed_quotas(denied=True)
    backend, rehearsal, calls = _backend(tmp_path)
    backend.preflight_training(_training(backend.config))
    assert calls == [("ListAWSDefaultServiceQuotas", {"ServiceCode": "sagemaker"})]
    assert (
        "warning: pre-flight: cannot read SageMaker quotas (AccessDeniedException); not checked: "
        "ml.g4dn.xlarge for training job usage (allow servicequotas:ListAWSDefaultServiceQuotas and "
        "servicequotas:GetServiceQuota to check them)"
    ) in backend.reporter.lines
    assert backend.reporter.lines[-1] == f"pre-flight passed (training job {JOB})"


def test_an_unknown_quota_name_is_a_warning(tmp_path, s3, dogs_dir, seed_quotas):
    upload_dataset(s3, dogs_dir)
    seed_quotas([TRAIN])
    backend, _, calls = _backend(tmp_path, "sagemaker.instance_type.train=ml.p3.2xlarge")
    backend.preflight_training(_training(backend.config))
    assert "warning: pre-flight: no Service Quota named 'ml.p3.2xlarge for training job usage' in us-east-1; not checked" in (
        backend.reporter.lines
    )
    assert calls == [("ListAWSDefaultServiceQuotas", {"ServiceCode": "sagemaker"})]


def test_deploy_checks_the_endpoint_quota_and_serverless_needs_none(tmp_path, s3, sagemaker_client, seed_quotas):
    seed_quotas([ENDPOINT], applied={"L-ENDPT001": 1})
    backend, _, calls = _backend(tmp_path, "sagemaker.endpoint_instance_count=2")
    request = DeployRequest(
        "dogbreed", f"s3://{BUCKET}/m/model.tar.gz", backend.config, datetime(2030, 1, 1, tzinfo=timezone.utc)
    )
    with pytest.raises(PreflightError, match=r"quota 'ml.m5.large for endpoint usage' is 1 in us-east-1 but 2 are needed"):
        backend.deploy(request)
    assert sagemaker_client.list_models()["Models"] == []
    assert calls[-1] == ("GetServiceQuota", {"ServiceCode": "sagemaker", "QuotaCode": "L-ENDPT001"})

    serverless, _, none = _backend(tmp_path, "deploy.serverless=true")
    serverless.preflight_deploy(DeployRequest("dogbreed", request.model_uri, serverless.config, request.expires_at))
    assert none == []  # serverless endpoints use no instance quota: nothing asked
