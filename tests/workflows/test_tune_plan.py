"""`tune --dry-run` and the refusals that come before any job: fast, nothing trains."""

from __future__ import annotations

import json


def test_dry_run_prints_the_plan_and_runs_nothing(tune_env):
    result = tune_env.cli("tune", "--dry-run", "--json")
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["dry_run"] is True and plan["backend"] == "local" and plan["strategy"] == "Random"
    assert plan["max_jobs"] == 3 and plan["sampler"].startswith("RandomSampler(seed=0")
    assert plan["search_space"]["lr"] == {"type": "continuous", "min": 0.001, "max": 0.05, "scaling": "Logarithmic", "log": True}
    assert plan["search_space"]["batch_size"] == {"type": "categorical", "values": [16, 32]}
    trial = plan["example_trial"]
    command = trial["command"]
    assert command[1].endswith("train.py")
    assert command[command.index("--batch-size") + 1] == str(trial["params"]["batch_size"])
    assert command[command.index("--cache-dir") + 1].endswith("cache/features")
    # Nothing ran and nothing was recorded.
    assert not (tune_env.workspace / "jobs").exists()
    assert tune_env.ledger.list("tuning-job") == []


def test_a_grid_over_a_continuous_range_is_refused_before_anything_runs(tune_env):
    tune_env.write_config(tune={"strategy": "Grid"})
    result = tune_env.cli("tune", "--json")
    assert result.returncode == 2 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Grid" in lines[0] and "lr" in lines[0] and "continuous" in lines[0]
    assert tune_env.ledger.list("tuning-job") == []


def test_a_range_the_training_config_would_refuse_is_exit_2(tune_env):
    tune_env.write_config(tune={"ranges": {"batch_size": {"type": "categorical", "values": [16, 0]}}})
    result = tune_env.cli("tune", "--json")
    assert result.returncode == 2
    assert "tune.ranges.batch_size" in result.stderr and "0 is not a valid train.batch_size" in result.stderr


def test_resuming_a_name_with_a_different_search_is_a_usage_error(tune_env):
    tune_env.ledger.record("tuning-job", "tune-other", "local", state="Stopped", meta={"fingerprint": "0" * 16})
    result = tune_env.cli("tune", "--name", "tune-other", "--dry-run", "--json")
    assert result.returncode == 2 and "searched a different space" in result.stderr


def test_sagemaker_dry_run_sends_the_same_ranges_as_the_local_plan(tune_env):
    """--backend sagemaker --dry-run: the exact CreateHyperParameterTuningJob request, built
    offline by the SageMaker backend from the same tune.* section as the local plan."""
    sets = [
        "--set",
        "sagemaker.region=us-east-1",
        "--set",
        "sagemaker.role=arn:aws:iam::123456789012:role/SageMakerRole",
        "--set",
        "sagemaker.bucket=dogbreed-test",
    ]
    offline = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_EC2_METADATA_DISABLED": "true"}
    from tests.conftest import dogbreed_cli

    result = dogbreed_cli(
        "tune",
        "-c",
        str(tune_env.config),
        "--backend",
        "sagemaker",
        *sets,
        "--dataset",
        "s3://dogbreed-test/dogbreed/data/dogs",
        "--dry-run",
        "--json",
        cwd=tune_env.root,
        env=offline,
    )
    assert result.returncode == 0, result.stderr
    remote = json.loads(result.stdout)
    local = json.loads(tune_env.cli("tune", "--dry-run", "--json").stdout)

    config = remote["requests"]["CreateHyperParameterTuningJob"]["HyperParameterTuningJobConfig"]
    assert config["Strategy"] == local["strategy"] == "Random"
    assert config["ResourceLimits"]["MaxNumberOfTrainingJobs"] == local["max_jobs"]
    assert config["HyperParameterTuningJobObjective"] == {"Type": "Maximize", "MetricName": "valid_acc"}
    ranges = config["ParameterRanges"]
    (lr,) = ranges["ContinuousParameterRanges"]
    assert (lr["Name"], float(lr["MinValue"]), float(lr["MaxValue"]), lr["ScalingType"]) == ("lr", 0.001, 0.05, "Logarithmic")
    (epochs,) = ranges["IntegerParameterRanges"]
    assert (int(epochs["MinValue"]), int(epochs["MaxValue"])) == (
        local["search_space"]["epochs"]["min"],
        local["search_space"]["epochs"]["max"],
    )
    (batch,) = ranges["CategoricalParameterRanges"]
    # The SDK JSON-encodes categorical values once more on the wire; the training toolkit
    # decodes them and passes --batch-size 16, as the local trial does.
    assert [json.loads(v) for v in batch["Values"]] == [str(v) for v in local["search_space"]["batch_size"]["values"]]
    assert tune_env.ledger.list("tuning-job") == []


def test_grid_says_its_grid_sets_the_trial_count_not_max_jobs(tune_env):
    tune_env.write_config(
        tune={"strategy": "Grid", "max_jobs": 3, "ranges": {"batch_size": {"type": "categorical", "values": [16, 32]}}}
    )
    result = tune_env.cli("tune", "--dry-run", "--json")
    assert result.returncode == 0, result.stderr
    assert "Grid search runs every point of its grid: 2 trials (tune.max_jobs 3 does not apply to Grid" in result.stderr
    assert json.loads(result.stdout)["dry_run"] is True  # stdout stays one JSON document
