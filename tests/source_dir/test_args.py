"""train.py's flags and SageMaker's environment: flags win, variables fill in, defaults work by hand."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from tests.source_dir.conftest import job_env


def test_parser_defaults_never_read_the_environment(train_module, monkeypatch):
    monkeypatch.setenv("SM_MODEL_DIR", "/opt/ml/model")
    monkeypatch.setenv("SM_CHANNEL_TRAINING", "/opt/ml/input/data/training")
    args = train_module.get_args_parser().parse_args([])
    assert args.model_dir is None and args.data_dir is None  # resolved after parsing


def test_paths_come_from_flags_then_sagemaker_then_defaults(train_module, tmp_path):
    parser = train_module.get_args_parser()
    env = {
        "SM_CHANNEL_TRAINING": "/data/training",
        "SM_CHANNEL_WEIGHTS": "/data/weights",
        "SM_MODEL_DIR": str(tmp_path / "job" / "model"),
        "SM_OUTPUT_DATA_DIR": "/out/data",
    }
    paths = train_module.resolve_paths(parser.parse_args([]), env)
    assert paths.data_dir == Path("/data/training") and paths.weights_dir == Path("/data/weights")
    assert paths.model_dir == tmp_path / "job" / "model" and paths.output_data_dir == Path("/out/data")
    if not train_module.SAGEMAKER_CHECKPOINTS.is_dir():
        assert paths.checkpoint_dir == tmp_path / "job" / "checkpoints"  # beside the model dir
    flagged = train_module.resolve_paths(
        parser.parse_args(["--data-dir", "d", "--model-dir", "m", "--checkpoint-dir", "c", "--cache-dir", "k"]), env
    )
    assert (flagged.data_dir, flagged.model_dir, flagged.checkpoint_dir, flagged.cache_dir) == tuple(map(Path, "dmck"))
    by_hand = train_module.resolve_paths(parser.parse_args(["--data-dir", "dogImages"]), {})
    assert by_hand.model_dir == Path("model") and by_hand.output_data_dir == Path("output/data")
    assert by_hand.weights_dir is None and by_hand.cache_dir.name == "dogbreed-features"
    if not train_module.SAGEMAKER_TRAINING_CHANNEL.is_dir():
        with pytest.raises(train_module.UsageError, match="no dataset"):
            train_module.resolve_paths(parser.parse_args([]), {})


def test_cluster_from_sagemaker_variables(train_module):
    env = {"SM_HOSTS": '["algo-1", "algo-2"]', "SM_CURRENT_HOST": "algo-2", "SM_NUM_GPUS": "4"}
    cluster = train_module.resolve_cluster(env)
    assert cluster.hosts == ["algo-1", "algo-2"] and cluster.num_gpus == 4 and not cluster.is_first_host
    assert train_module.resolve_cluster({}).is_first_host


@pytest.mark.parametrize("text, value", [("true", True), ("True", True), ("1", True), ("false", False), ("False", False)])
def test_booleans_arrive_as_strings(train_module, text, value):
    args = train_module.get_args_parser().parse_args(["--feature-cache", text, "--debugger", text])
    assert args.feature_cache is value and args.debugger is value


def test_a_bad_boolean_is_a_usage_error(train_module, capsys):
    with pytest.raises(SystemExit):
        train_module.get_args_parser().parse_args(["--feature-cache", "maybe"])
    assert "expected true or false" in capsys.readouterr().err


def test_weights_names_resolve_in_the_weights_channel_first(train_module, tmp_path, monkeypatch):
    channel = tmp_path / "weights"
    channel.mkdir()
    (channel / "w.pth").write_bytes(b"x")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "w.pth").write_bytes(b"y")
    assert train_module.resolve_weights("w.pth", channel) == str((channel / "w.pth").resolve())
    assert train_module.resolve_weights("w.pth", None) == str((tmp_path / "w.pth").resolve())
    assert train_module.resolve_weights("imagenet", channel) == "imagenet"
    with pytest.raises(train_module.UsageError, match="no such file"):
        train_module.resolve_weights("missing.pth", channel)


@pytest.mark.slow
def test_preflight_runs_one_batch_and_ignores_the_tuners_extra_arguments(
    train_module, tmp_path, channel, common_flags, monkeypatch, capsys
):
    """SageMaker tuning adds `--_tuning_objective_metric`; the pre-flight passes --max-batches 1."""
    for key, value in job_env(tmp_path, channel).items():
        if key.startswith("SM_"):
            monkeypatch.setenv(key, value)
    final = train_module.cli([*common_flags, "--epochs", "2", "--max-batches", "1", "--_tuning_objective_metric", "valid_acc"])
    err = capsys.readouterr().err
    assert "ignoring arguments train.py does not know: --_tuning_objective_metric valid_acc" in err
    records = [json.loads(line) for line in (tmp_path / "output" / "data" / "records.jsonl").read_text().splitlines()]
    assert [(r["epoch"], r["step"]) for r in records if r["type"] == "step"] == [(1, 1), (2, 1)]
    meta = next(r for r in records if r["type"] == "meta")
    assert (meta["num_train"], meta["num_valid"], meta["num_test"]) == (16, 10, 10)
    assert "test_acc" in final and (tmp_path / "model" / "model.pth").exists()


def test_input_errors_are_one_line_and_exit_2(train_module, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SM_MODEL_DIR", str(tmp_path / "model"))
    with pytest.raises(SystemExit) as exit_info:
        train_module.cli(["--data-dir", str(tmp_path / "nowhere"), "--weights", "none"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("train.py: error: dataset folder")


def test_str2bool_is_argparse_friendly(train_module):
    with pytest.raises(argparse.ArgumentTypeError):
        train_module.str2bool("yes please")
