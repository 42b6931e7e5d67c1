"""The pure parts: the argv train.py gets, the source bundle, tags, prices, trial parsing."""

from __future__ import annotations

import io
import json
import tarfile

import pytest

from dogbreed.aws import pricing
from dogbreed.aws.describe import best_trial, params_from_hyperparameters, tuning_answer
from dogbreed.aws.estimators import job_inputs
from dogbreed.aws.staging import bundle_bytes, source_bundle
from dogbreed.aws.tags import resource_tags
from dogbreed.config.flags import to_argv
from tests.backends.sagemaker.conftest import BUCKET, DATASET, sm_config


def test_train_py_gets_the_same_argv_on_sagemaker_as_locally(tmp_path, imagenet_weights):
    """The SDK JSON-encodes each hyperparameter; the real training toolkit decodes them and
    builds argv. The flags must come out as the local backend passes them."""
    import sagemaker_training.mapping as mapping

    from dogbreed.aws.session import import_sdk

    import_sdk()
    from sagemaker.estimator import EstimatorBase

    config = sm_config(
        tmp_path, "sagemaker.debugger=true", "train.lr=1e-05", "train.feature_cache=false", f"model.weights={imagenet_weights}"
    )
    flags = job_inputs(config, DATASET, "s3://b/p").hyperparameters
    on_the_wire = EstimatorBase._json_encode_hyperparameters(flags)  # what the request carries
    decoded = {key: json.loads(value) for key, value in on_the_wire.items()}  # environment.read_hyperparameters
    toolkit_argv = mapping.to_cmd_args(decoded)
    local_argv = to_argv(flags)
    assert dict(zip(toolkit_argv[::2], toolkit_argv[1::2])) == dict(zip(local_argv[::2], local_argv[1::2]))
    assert "--lr" in toolkit_argv and toolkit_argv[toolkit_argv.index("--lr") + 1] == "1e-05"
    assert toolkit_argv[toolkit_argv.index("--feature-cache") + 1] == "false"  # not Python's 'False'
    assert toolkit_argv[toolkit_argv.index("--debugger") + 1] == "true"
    assert toolkit_argv[toolkit_argv.index("--weights") + 1] == imagenet_weights.name


def test_the_source_bundle_is_reproducible_and_leaves_caches_out(tmp_path):
    package = tmp_path / "pkg"
    (package / "breedkit" / "__pycache__").mkdir(parents=True)
    (package / "train.py").write_text("print('hi')\n")
    (package / "breedkit" / "metrics.json").write_text("{}")
    (package / "breedkit" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0")
    (package / ".DS_Store").write_bytes(b"junk")
    first = bundle_bytes(package)
    (package / "train.py").touch()  # a new mtime, same content
    assert bundle_bytes(package) == first
    with tarfile.open(fileobj=io.BytesIO(first)) as tar:
        assert tar.getnames() == ["breedkit/metrics.json", "train.py"]
        assert {member.mtime for member in tar.getmembers()} == {0}
    before = source_bundle("s3://b/p", package).uri
    (package / "train.py").write_text("print('changed')\n")
    assert source_bundle("s3://b/p", package).uri != before


def test_tags_are_ours_first_and_the_users_cannot_override_them(tmp_path):
    config = sm_config(tmp_path, "sagemaker.prefix=birds", "sagemaker.tags={team: vision, 'dogbreed:run': hijack}")
    assert resource_tags(config.sagemaker, run="r1", kind="training-job") == [
        {"Key": "dogbreed:project", "Value": "birds"},
        {"Key": "dogbreed:run", "Value": "r1"},
        {"Key": "dogbreed:kind", "Value": "training-job"},
        {"Key": "team", "Value": "vision"},
    ]


def test_cost_estimates(tmp_path):
    config = sm_config(tmp_path, "sagemaker.instance_count=2", "sagemaker.expected_hours=1.5", "sagemaker.spot=true")
    estimate = pricing.training_estimate(config)
    assert estimate["usd_per_hour"] == pytest.approx(2 * 0.736)
    assert estimate["estimated_usd"] == pytest.approx(2 * 0.736 * 1.5)
    assert "spot" in estimate["note"]
    assert pricing.tuning_estimate(config, 8)["estimated_usd"] == pytest.approx(2 * 0.736 * 1.5 * 8)
    unknown = pricing.training_estimate(sm_config(tmp_path, "sagemaker.instance_type.train=ml.p5.48xlarge"))
    assert unknown["estimated_usd"] is None and "sagemaker.prices" in unknown["note"]


def test_tuned_hyperparameters_come_back_as_typed_train_keys():
    assert params_from_hyperparameters({"batch-size": '"32"', "lr": "0.01", "epochs": "4", "weight-decay": "1e-05"}) == {
        "batch_size": 32,
        "lr": 0.01,
        "epochs": 4,
        "weight_decay": 1e-05,
    }


def test_best_trial_follows_the_objective_type_and_sagemakers_choice():
    trials = [
        {"name": "a", "params": {}, "objective": 0.9, "status": "Completed"},
        {"name": "b", "params": {}, "objective": 0.4, "status": "Completed"},
        {"name": "c", "params": {}, "objective": 0.1, "status": "Stopped"},
    ]
    assert best_trial(trials, "Minimize")["name"] == "b"
    assert best_trial(trials, "Maximize")["name"] == "a"
    assert best_trial(trials, "Maximize", named="b")["name"] == "b"
    assert best_trial(trials[2:], "Maximize") is None


def test_the_tune_answer_has_designs_fields():
    describe = {
        "HyperParameterTuningJobName": "t1",
        "HyperParameterTuningJobStatus": "Completed",
        "HyperParameterTuningJobConfig": {
            "Strategy": "Random",
            "HyperParameterTuningJobObjective": {"Type": "Minimize", "MetricName": "valid_loss"},
        },
        "BestTrainingJob": {"TrainingJobName": "t1-002"},
    }
    summaries = [
        {
            "TrainingJobName": "t1-002",
            "TrainingJobStatus": "Completed",
            "TunedHyperParameters": {"lr": "0.1"},
            "FinalHyperParameterTuningJobObjectiveMetric": {"MetricName": "valid_loss", "Value": 0.5},
        },
        {
            "TrainingJobName": "t1-001",
            "TrainingJobStatus": "Completed",
            "TunedHyperParameters": {"lr": "0.2"},
            "FinalHyperParameterTuningJobObjectiveMetric": {"MetricName": "valid_loss", "Value": 0.7},
        },
    ]
    answer = tuning_answer(describe, summaries)
    assert answer["tuning_job"] == "t1" and answer["strategy"] == "Random"
    assert answer["trials"] == [
        {"name": "t1-001", "params": {"lr": 0.2}, "objective": 0.7, "status": "Completed"},
        {"name": "t1-002", "params": {"lr": 0.1}, "objective": 0.5, "status": "Completed"},
    ]
    assert answer["best"] == {"name": "t1-002", "params": {"lr": 0.1}, "objective": 0.5}


def test_a_file_upload_reports_its_bytes_and_is_skipped_when_already_there(tmp_path, s3):
    from contextlib import contextmanager

    from dogbreed.aws.staging import local_file, upload_if_missing

    class Counting:
        """A reporter that keeps what a task was told (boto3 calls back from its threads)."""

        def __init__(self) -> None:
            self.tasks: dict[str, list[float]] = {}

        @contextmanager
        def task(self, description, total=None):
            self.tasks[description] = seen = [total, 0]
            yield lambda amount=1: seen.__setitem__(1, seen[1] + amount)

    weights = tmp_path / "weights.pth"
    weights.write_bytes(bytes(range(256)) * 4096)  # 1 MiB
    staged = local_file(f"s3://{BUCKET}/prefix", weights)
    reporter = Counting()
    assert upload_if_missing(s3, staged, reporter) is True
    assert reporter.tasks == {"Uploading weights.pth": [1_048_576, 1_048_576]}  # every byte counted
    bucket, key = staged.uri.removeprefix("s3://").split("/", 1)
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == weights.read_bytes()
    reporter.tasks.clear()
    assert upload_if_missing(s3, staged, reporter) is False and reporter.tasks == {}  # same sha256: nothing sent
