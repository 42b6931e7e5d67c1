"""Pre-flight: each problem in one clear line, before anything billable is created."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dogbreed.aws.preflight import PreflightError
from dogbreed.backends.base import TrainingOutcome, TrainingRequest
from dogbreed.config.flags import hyperparameters
from tests.backends.sagemaker.conftest import BUCKET, DATASET, DEBUGGER_CONTAINER, make_backend, sm_config, upload_dataset

JOB = "dogbreed-train-261127-101500-a1b2"
GOOD_LOG = "\n".join(
    [
        "epoch=1 train_loss=2.1 train_acc=0.4 valid_loss=1.5 valid_acc=0.55",
        "test_loss=0.95 test_acc=0.79 best_epoch=2 valid_loss=0.7 valid_acc=0.8",
    ]
)


class FakeRehearsal:
    """Stands in for the local runner: records the request, 'prints' `log`."""

    def __init__(self, tmp_path: Path, log: str = GOOD_LOG, state: str = "Completed") -> None:
        self.requests: list[TrainingRequest] = []
        self.log_file, self.log, self.state = tmp_path / "rehearsal.log", log, state

    def __call__(self, request: TrainingRequest) -> TrainingOutcome:
        self.requests.append(request)
        self.log_file.write_text(self.log)
        failure = None if self.state == "Completed" else "train.py exited with 1"
        return TrainingOutcome(request.name, self.state, failure=failure, log_uri=str(self.log_file))


def _request(config) -> TrainingRequest:
    return TrainingRequest(JOB, config, DATASET, hyperparameters(config))


def _backend(tmp_path, *sets: str, log: str = GOOD_LOG, state: str = "Completed"):
    rehearsal = FakeRehearsal(tmp_path, log, state)
    config = sm_config(tmp_path, "sagemaker.preflight=true", *sets)
    return make_backend(config, rehearse=rehearsal), rehearsal


def test_a_good_setup_passes_and_rehearses_with_the_jobs_flags(tmp_path, s3, dogs_dir, imagenet_weights):
    upload_dataset(s3, dogs_dir)
    backend, rehearsal = _backend(
        tmp_path, "train.batch_size=2", "sagemaker.debugger=true", *DEBUGGER_CONTAINER, f"model.weights={imagenet_weights}"
    )
    backend.preflight_training(_request(backend.config))
    assert backend.reporter.lines[-1] == f"pre-flight passed (training job {JOB})"
    (ran,) = rehearsal.requests
    assert ran.max_batches == 1
    assert ran.name == f"{JOB}-preflight"
    # The flags the SageMaker job gets, with the weights file as a local path.
    assert ran.hyperparameters["batch-size"] == 2 and ran.hyperparameters["debugger"] == "true"
    assert ran.hyperparameters["feature-cache"] == "true" and ran.hyperparameters["weights"] == str(imagenet_weights)
    # A few files of the S3 dataset, 'batch-size' per split, with a manifest of their own.
    local = Path(ran.dataset_uri)
    manifest = json.loads((local / "manifest.json").read_text())
    assert [f["split"] for f in manifest["files"]] == ["train", "train", "valid", "valid", "test", "test"]
    assert "manifest_sha256" not in manifest
    assert all((local / f["path"]).stat().st_size == f["size"] for f in manifest["files"])


def test_every_problem_is_one_line_and_nothing_is_created(tmp_path, s3, sagemaker_client, dogs_dir):
    backend, rehearsal = _backend(
        tmp_path,
        "sagemaker.bucket=no-such-bucket",
        "sagemaker.role=arn:aws:iam::999999999999:role/Other",
        "sagemaker.instance_type.train=ml.g4dnn.xlarge",
        "sagemaker.framework_version=9.9.9",
    )
    with pytest.raises(PreflightError) as caught:
        backend.start_training(_request(backend.config))
    lines = str(caught.value).splitlines()
    assert lines[0] == "pre-flight found 4 problem(s); fix them or skip the checks with --set sagemaker.preflight=false:"
    problems = caught.value.problems
    assert problems[0].startswith("sagemaker.instance_type.train: 'ml.g4dnn.xlarge' is not a SageMaker instance type")
    assert "no PyTorch 9.9.9 py312 training image" in problems[1]
    assert problems[2] == "sagemaker.role is in account 999999999999 but your credentials are for 123456789012"
    assert problems[3].startswith("bucket 'no-such-bucket' does not exist")
    assert len(lines) == 5 and rehearsal.requests == []  # no rehearsal while the setup is broken
    assert sagemaker_client.list_training_jobs()["TrainingJobSummaries"] == []
    assert s3.list_objects_v2(Bucket=BUCKET).get("KeyCount", 0) == 0  # not even the code was uploaded


def test_debugger_that_would_record_nothing_is_a_preflight_problem(tmp_path, s3, dogs_dir):
    upload_dataset(s3, dogs_dir)
    backend, rehearsal = _backend(tmp_path, "sagemaker.debugger=true")
    with pytest.raises(PreflightError) as caught:
        backend.preflight_training(_request(backend.config))
    (problem,) = caught.value.problems
    assert problem.startswith("sagemaker.debugger=true records nothing on the PyTorch 2.8.0 training container")
    assert problem.endswith("(records.jsonl) and `dogbreed report` judges them with the same rules")
    assert rehearsal.requests == []


def test_an_unknown_region_is_named(tmp_path, s3):
    backend, _ = _backend(tmp_path, "sagemaker.region=moon-1")
    with pytest.raises(PreflightError, match="region 'moon-1' has no SageMaker"):
        backend.preflight_training(_request(backend.config))


def test_a_regex_that_matches_nothing_fails_the_rehearsal(tmp_path, s3, dogs_dir):
    upload_dataset(s3, dogs_dir)
    backend, _ = _backend(tmp_path, log="epoch=1 train_loss=2.1 train_acc=0.4 valid_loss=1.5 valid_acc=0.55\n")
    with pytest.raises(PreflightError) as caught:
        backend.preflight_training(_request(backend.config))
    assert caught.value.problems[0].startswith(
        "metric regexes for test_loss, test_acc, best_epoch matched nothing train.py printed"
    )


def test_a_failing_rehearsal_points_at_its_log(tmp_path, s3, dogs_dir):
    upload_dataset(s3, dogs_dir)
    backend, rehearsal = _backend(tmp_path, state="Failed")
    with pytest.raises(PreflightError) as caught:
        backend.preflight_training(_request(backend.config))
    assert caught.value.problems == [
        f"train.py failed its one-batch rehearsal (train.py exited with 1); log: {rehearsal.log_file}"
    ]


def test_a_dataset_without_manifest_passes_with_a_pointer_to_ingest_in_place(tmp_path, s3):
    """train.py scans folders when there is no manifest, so the job can run; the warning says
    how to check the photos and write one without uploading anything."""
    backend, rehearsal = _backend(tmp_path)
    backend.preflight_training(_request(backend.config))
    assert (
        f"warning: pre-flight: {DATASET}: no manifest.json; if the photos are already there, `dogbreed ingest {DATASET}` "
        "checks them and writes one in place (nothing is uploaded), else ingest the dataset there first; "
        "train.py will scan the folders; no rehearsal"
    ) in backend.reporter.lines
    assert rehearsal.requests == []
    assert backend.reporter.lines[-1] == f"pre-flight passed (training job {JOB})"


def test_deploy_checks_the_endpoint_instance_type(tmp_path, s3, sagemaker_client):
    from datetime import datetime, timezone

    from dogbreed.backends.base import DeployRequest

    backend, _ = _backend(tmp_path, "sagemaker.instance_type.endpoint=ml.m5.huge")
    request = DeployRequest(
        "dogbreed", f"s3://{BUCKET}/m/model.tar.gz", backend.config, datetime(2030, 1, 1, tzinfo=timezone.utc)
    )
    with pytest.raises(PreflightError, match="sagemaker.instance_type.endpoint: 'ml.m5.huge'"):
        backend.deploy(request)
    assert sagemaker_client.list_models()["Models"] == []


@pytest.mark.slow
def test_the_real_train_py_rehearses_on_one_batch(tmp_path, s3, dogs_dir, imagenet_weights):
    """The local runner and the real train.py: every metric regex matches its output."""
    upload_dataset(s3, dogs_dir)
    config = sm_config(
        tmp_path,
        "sagemaker.preflight=true",
        "train.batch_size=2",
        "train.epochs=1",
        "train.num_workers=0",
        f"model.weights={imagenet_weights}",
    )
    backend = make_backend(config)
    backend.preflight_training(_request(config))
    assert backend.reporter.lines[-1] == f"pre-flight passed (training job {JOB})"
