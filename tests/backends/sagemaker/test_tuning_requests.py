"""The exact CreateHyperParameterTuningJob request: ranges, strategy, limits, objective, warm start."""

from __future__ import annotations

import pytest
import yaml

from dogbreed.backends.base import TuningRequest
from dogbreed.errors import ConfigError, UsageError
from dogbreed.jobspec import metric_spec
from tests.backends.sagemaker.conftest import BUCKET, DATASET, ROLE, TRAINING_IMAGE, make_backend, sm_config

TUNE = "dogbreed-tune-261127-101500-ab"


def _config(tmp_path, tune: dict | None = None, *sets: str):
    if tune is None:
        return sm_config(tmp_path, *sets)
    path = tmp_path / "tune.yaml"
    path.write_text(yaml.safe_dump({"tune": tune}, sort_keys=False))
    return sm_config(tmp_path, *sets, files=(path,))


def _plan(config) -> dict:
    return make_backend(config).plan_tuning(TuningRequest(TUNE, config, DATASET))["requests"]["CreateHyperParameterTuningJob"]


def test_default_request_is_exact_and_reaches_moto(tmp_path, s3, sagemaker_client):
    config = _config(tmp_path)
    backend = make_backend(config)
    planned = backend.plan_tuning(TuningRequest(TUNE, config, DATASET))
    backend.start_tuning(TuningRequest(TUNE, config, DATASET))
    sent = backend.last_requests["CreateHyperParameterTuningJob"]
    assert planned["requests"]["CreateHyperParameterTuningJob"] == sent
    assert planned["trials"] == 8
    code_uri = sent["TrainingJobDefinition"]["StaticHyperParameters"]["sagemaker_submit_directory"]
    assert sent["HyperParameterTuningJobConfig"] == {
        "Strategy": "Bayesian",
        "ResourceLimits": {"MaxNumberOfTrainingJobs": 8, "MaxParallelTrainingJobs": 1},
        "TrainingJobEarlyStoppingType": "Off",
        "RandomSeed": 0,
        "HyperParameterTuningJobObjective": {"Type": "Maximize", "MetricName": "valid_acc"},
        "ParameterRanges": {
            # Keys are train.py's flags; scaling comes from tune.ranges.
            "ContinuousParameterRanges": [
                {"Name": "lr", "MinValue": "3e-05", "MaxValue": "0.001", "ScalingType": "Logarithmic"},
                {"Name": "label-smoothing", "MinValue": "0.0", "MaxValue": "0.2", "ScalingType": "Auto"},
            ],
            "CategoricalParameterRanges": [
                {"Name": "lr-schedule", "Values": ['"cosine"', '"constant"']},
                {"Name": "batch-size", "Values": ['"16"', '"32"', '"64"']},
            ],
            "IntegerParameterRanges": [{"Name": "epochs", "MinValue": "6", "MaxValue": "16", "ScalingType": "Auto"}],
        },
    }
    assert sent["TrainingJobDefinition"] == {
        # The tuned flags are not static; everything else train.py gets is.
        "StaticHyperParameters": {
            "arch": '"mobilenet_v2"',
            "weights": '"imagenet"',
            "freeze": '"backbone"',
            "head-init": '"pretrained"',
            "tta": '"none"',
            "weight-decay": "0.01",
            "warmup-epochs": "1.0",
            "seed": "0",
            "feature-cache": '"true"',
            "augment-views": "0",
            "num-workers": "2",
            "sagemaker_submit_directory": code_uri,
            "sagemaker_program": '"train.py"',
            "sagemaker_container_log_level": "20",
            "sagemaker_job_name": f'"{TUNE}"',
            "sagemaker_region": '"us-east-1"',
            "sagemaker_estimator_class_name": '"PyTorch"',
            "sagemaker_estimator_module": '"sagemaker.pytorch.estimator"',
        },
        "RoleArn": ROLE,
        "OutputDataConfig": {"S3OutputPath": f"s3://{BUCKET}/dogbreed/jobs/"},
        "StoppingCondition": {"MaxRuntimeInSeconds": 4 * 3600},
        "HyperParameterTuningResourceConfig": {"InstanceCount": 1, "InstanceType": "ml.g4dn.xlarge", "VolumeSizeInGB": 30},
        "AlgorithmSpecification": {
            "TrainingInputMode": "File",
            # Without these the objective could not be read from the trials' logs.
            "MetricDefinitions": metric_spec().metric_definitions(),
            "TrainingImage": TRAINING_IMAGE,
        },
        "InputDataConfig": [
            {
                "DataSource": {
                    "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": DATASET, "S3DataDistributionType": "FullyReplicated"}
                },
                "ChannelName": "training",
            }
        ],
    }
    assert sent["Tags"] == [
        {"Key": "dogbreed:project", "Value": "dogbreed"},
        {"Key": "dogbreed:run", "Value": TUNE},
        {"Key": "dogbreed:kind", "Value": "tuning-job"},
    ]
    assert "WarmStartConfig" not in sent
    received = sagemaker_client.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=TUNE)
    assert (
        received["HyperParameterTuningJobConfig"]["ParameterRanges"] == sent["HyperParameterTuningJobConfig"]["ParameterRanges"]
    )


def test_objective_limits_seed_and_early_stopping_follow_the_config(tmp_path):
    config = _config(
        tmp_path,
        None,
        "tune.max_jobs=20",
        "tune.max_parallel_jobs=4",
        "tune.seed=7",
        "tune.early_stopping=Auto",
        "tune.objective.metric=valid_loss",
        "tune.objective.type=Minimize",
        "sagemaker.instance_type.tune=ml.g5.xlarge",
    )
    job = _plan(config)["HyperParameterTuningJobConfig"]
    assert job["ResourceLimits"] == {"MaxNumberOfTrainingJobs": 20, "MaxParallelTrainingJobs": 4}
    assert job["RandomSeed"] == 7
    assert job["TrainingJobEarlyStoppingType"] == "Auto"
    assert job["HyperParameterTuningJobObjective"] == {"Type": "Minimize", "MetricName": "valid_loss"}


def test_random_strategy_and_reverse_logarithmic_scaling(tmp_path):
    ranges = {
        "lr": {"type": "continuous", "min": 0.001, "max": 0.9, "scaling": "ReverseLogarithmic"},
        "batch_size": {"type": "integer", "min": 8, "max": 64, "scaling": "Linear"},
    }
    config = _config(tmp_path, {"strategy": "Random", "ranges": ranges})
    job = _plan(config)["HyperParameterTuningJobConfig"]
    assert job["Strategy"] == "Random"
    assert job["ParameterRanges"] == {
        "ContinuousParameterRanges": [
            {"Name": "lr", "MinValue": "0.001", "MaxValue": "0.9", "ScalingType": "ReverseLogarithmic"}
        ],
        "CategoricalParameterRanges": [],
        "IntegerParameterRanges": [{"Name": "batch-size", "MinValue": "8", "MaxValue": "64", "ScalingType": "Linear"}],
    }


def test_grid_is_categorical_only_with_the_exact_number_of_combinations(tmp_path):
    ranges = {"epochs": {"type": "integer", "min": 2, "max": 4}, "batch_size": {"type": "categorical", "values": [16, 32]}}
    config = _config(tmp_path, {"strategy": "Grid", "ranges": ranges, "max_jobs": 50})
    backend = make_backend(config)
    plan = backend.plan_tuning(TuningRequest(TUNE, config, DATASET))
    job = plan["requests"]["CreateHyperParameterTuningJob"]["HyperParameterTuningJobConfig"]
    assert job["Strategy"] == "Grid"
    assert job["ParameterRanges"] == {
        "ContinuousParameterRanges": [],
        "CategoricalParameterRanges": [
            {"Name": "epochs", "Values": ['"2"', '"3"', '"4"']},
            {"Name": "batch-size", "Values": ['"16"', '"32"']},
        ],
        "IntegerParameterRanges": [],
    }
    # 3 x 2 combinations, whatever tune.max_jobs says; the cost estimate counts the same.
    assert job["ResourceLimits"] == {"MaxNumberOfTrainingJobs": 6, "MaxParallelTrainingJobs": 1}
    assert plan["trials"] == 6 and plan["cost"]["jobs"] == 6


def test_the_sdks_own_grid_request_would_never_be_sent():
    """Why we count the combinations: the SDK's max_jobs=None becomes MaxNumberOfTrainingJobs=None,
    which botocore refuses before sending (the workaround in aws/tuner.py)."""
    import botocore.session
    from botocore.validate import ParamValidator

    shape = (
        botocore.session.get_session().get_service_model("sagemaker").operation_model("CreateHyperParameterTuningJob").input_shape
    )
    config = {"Strategy": "Grid", "ResourceLimits": {"MaxNumberOfTrainingJobs": None, "MaxParallelTrainingJobs": 1}}
    report = ParamValidator().validate({"HyperParameterTuningJobName": TUNE, "HyperParameterTuningJobConfig": config}, shape)
    assert report.has_errors() and "MaxNumberOfTrainingJobs" in report.generate_report()


def test_hyperband_allots_epochs_and_refuses_early_stopping(tmp_path):
    ranges = {"lr": {"type": "continuous", "min": 0.0001, "max": 0.1, "scaling": "Logarithmic"}}
    config = _config(tmp_path, {"strategy": "Hyperband", "ranges": ranges}, "train.epochs=9")
    job = _plan(config)["HyperParameterTuningJobConfig"]
    assert job["StrategyConfig"] == {"HyperbandStrategyConfig": {"MinResource": 1, "MaxResource": 9}}
    config = _config(tmp_path, {"strategy": "Hyperband", "ranges": ranges, "early_stopping": "Auto"})
    with pytest.raises(ConfigError, match="Hyperband stops trials itself"):
        _plan(config)


def test_warm_start_from_earlier_tuning_jobs(tmp_path, s3, sagemaker_client):
    config = _config(tmp_path, None, "tune.warm_start_from=[dogbreed-tune-b, dogbreed-tune-a, dogbreed-tune-b]")
    backend = make_backend(config)
    backend.start_tuning(TuningRequest(TUNE, config, DATASET))
    sent = backend.last_requests["CreateHyperParameterTuningJob"]
    assert sent["WarmStartConfig"] == {
        "WarmStartType": "TransferLearning",
        "ParentHyperParameterTuningJobs": [
            {"HyperParameterTuningJobName": "dogbreed-tune-a"},
            {"HyperParameterTuningJobName": "dogbreed-tune-b"},
        ],
    }
    received = sagemaker_client.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=TUNE)
    assert received["WarmStartConfig"] == sent["WarmStartConfig"]


def test_spot_trials_share_no_checkpoint_folder(tmp_path):
    config = _config(tmp_path, None, "sagemaker.spot=true")
    definition = _plan(config)["TrainingJobDefinition"]
    assert definition["EnableManagedSpotTraining"] is True
    assert definition["StoppingCondition"] == {"MaxRuntimeInSeconds": 4 * 3600, "MaxWaitTimeInSeconds": 8 * 3600}
    assert "CheckpointConfig" not in definition


def test_tuning_job_names_longer_than_32_are_refused(tmp_path):
    config = _config(tmp_path)
    with pytest.raises(UsageError, match="at most 32"):
        make_backend(config).plan_tuning(TuningRequest("dogbreed-tune-261127-101500-abcdef", config, DATASET))
