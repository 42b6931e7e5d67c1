"""Config layering and its one-line errors: defaults < YAML < --set < flags."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from dogbreed.config import load_config, require_path
from dogbreed.config.flags import flag_for, hyperparameters, to_argv, with_params
from dogbreed.config.loader import parse_set
from dogbreed.config.schema import DOGIMAGES_URL, parse_duration
from dogbreed.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str, name: str = "c.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_defaults_describe_the_local_backend():
    config = load_config()
    assert config.backend == "local"
    assert config.workspace == ".dogbreed"
    assert config.data.source == DOGIMAGES_URL
    assert config.model.arch == "mobilenet_v2"
    assert config.tune.objective.metric == "valid_acc"


def test_partial_yaml_layers_over_defaults_and_set_wins(tmp_path):
    first = write(tmp_path, "train:\n  lr: 0.01\n  epochs: 3\n", "a.yaml")
    second = write(tmp_path, "train:\n  epochs: 7\n", "b.yaml")
    config = load_config([first, second], ["train.lr=0.5", "model.arch=resnet18"], {"tune.name": "mine"})
    assert config.train.lr == 0.5  # --set beats the file
    assert config.train.epochs == 7  # the later file beats the earlier
    assert config.train.batch_size == 32  # untouched default
    assert config.model.arch == "resnet18"
    assert config.tune.name == "mine"  # explicit flags beat everything


def test_flag_overrides_beat_set_and_none_is_ignored():
    config = load_config([], ["deploy.port=9000"], {"deploy.port": 9100, "deploy.ttl": None})
    assert config.deploy.port == 9100
    assert config.deploy.ttl == "2h"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("train.lr=0.01", 0.01), ("train.epochs=3", 3), ("sagemaker.spot=true", True), ("data.uri=s3://b/p", "s3://b/p")],
)
def test_set_values_are_coerced_like_yaml(raw, expected):
    assert parse_set(raw)[1] == expected


def test_unknown_key_in_a_file_names_file_key_and_suggestion(tmp_path):
    path = write(tmp_path, "train:\n  learning_rate: 0.1\n")
    with pytest.raises(ConfigError) as err:
        load_config([path])
    message = str(err.value)
    assert str(path) in message and "train.learning_rate" in message and "unknown key" in message
    assert "\n" not in message


def test_typo_gets_a_did_you_mean():
    with pytest.raises(ConfigError, match=r"did you mean 'lr'"):
        load_config([], ["train.lrr=1"])


@pytest.mark.parametrize(
    ("item", "fragment"),
    [
        ("train.lr=abc", "valid number"),
        ("train.epochs=0", "greater than or equal to 1"),
        ("backend=aws", "'local' or 'sagemaker'"),
        ("tune.strategy=Genetic", "Bayesian"),
        ("deploy.ttl=forever", "duration"),
        ("sagemaker.role=MyRole", "full IAM role ARN"),
        ("data.split.train=0.9", "add up to 1"),
        ("tune.objective.metric=test_acc", "never optimised"),
    ],
)
def test_wrong_values_fail_with_the_origin_and_the_expectation(item, fragment):
    with pytest.raises(ConfigError) as err:
        load_config([], [item])
    assert f"--set {item.split('=')[0]}" in str(err.value)
    assert fragment in str(err.value)


def test_grid_with_a_continuous_range_is_refused_up_front(tmp_path):
    path = write(tmp_path, "tune:\n  strategy: Grid\n  ranges:\n    lr: {type: continuous, min: 0.001, max: 0.1}\n")
    with pytest.raises(ConfigError, match="Grid search takes only integer and categorical ranges"):
        load_config([path])


def test_ranges_are_checked_for_shape(tmp_path):
    path = write(tmp_path, "tune:\n  ranges:\n    lr: {type: continuous, min: 0.1, max: 0.01}\n")
    with pytest.raises(ConfigError, match="must be below"):
        load_config([path])
    path = write(tmp_path, "tune:\n  ranges:\n    momentum: {type: continuous, min: 0.1, max: 0.9}\n")
    with pytest.raises(ConfigError, match="cannot tune 'momentum'"):
        load_config([path])


def test_bad_yaml_and_missing_file_are_one_line(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config([tmp_path / "nope.yaml"])
    path = write(tmp_path, "train: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config([path])
    path = write(tmp_path, "- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config([path])


@pytest.mark.parametrize("name", ["local.yaml", "sagemaker.yaml", "hpo.yaml"])
def test_shipped_configs_are_valid(name):
    load_config([REPO / "configs" / name])


def test_hyperparameters_round_trip_to_flags():
    config = load_config([], ["train.batch_size=64", "train.lr=0.002"])
    hps = hyperparameters(config)
    assert hps["batch-size"] == 64 and hps["lr"] == 0.002 and hps["feature-cache"] is True
    argv = to_argv(hps)
    assert argv[argv.index("--batch-size") + 1] == "64"
    assert argv[argv.index("--feature-cache") + 1] == "true"
    assert flag_for("weight_decay") == "weight-decay"


def test_tuned_params_are_validated_and_typed():
    config = with_params(load_config(), {"batch_size": 16, "lr": 0.01})
    assert config.train.batch_size == 16 and isinstance(config.train.batch_size, int)
    with pytest.raises(ValidationError):
        with_params(load_config(), {"batch_size": 0})


def test_durations():
    assert parse_duration("90m").total_seconds() == 5400
    assert parse_duration("1d").total_seconds() == 86400
    with pytest.raises(ValueError):
        parse_duration("2 weeks")


def test_yaml_1_1_booleans_stay_words(tmp_path):
    # `early_stopping: Off` is a strategy name, not YAML 1.1's boolean False.
    path = write(tmp_path, "tune:\n  early_stopping: Off\nsagemaker:\n  spot: true\n")
    config = load_config([path], ["deploy.endpoint_name=no"])
    assert config.tune.early_stopping == "Off" and config.sagemaker.spot is True
    assert config.deploy.endpoint_name == "no"
    assert load_config([], ["tune.early_stopping=Auto", "sagemaker.spot=false"]).sagemaker.spot is False


def test_relative_paths_in_a_file_are_read_from_its_folder(tmp_path, monkeypatch):
    folder = tmp_path / "other" / "dir"
    folder.mkdir(parents=True)
    (folder / "dogs").mkdir()
    (folder / "w.pth").write_bytes(b"")
    path = write(folder, "workspace: state\ndata: {source: dogs, uri: s3://b/p}\nmodel: {weights: w.pth}\n", "local.yaml")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    config = load_config([Path("../other/dir/local.yaml")])
    assert config.workspace == str(folder / "state")
    assert config.data.source == str(folder / "dogs")
    assert config.model.weights == str(folder / "w.pth")
    assert config.data.uri == "s3://b/p"  # URLs and keywords are left alone
    require_path(config, "data.source")
    require_path(config, "model.weights")
    assert load_config([path], ["model.weights=imagenet"]).model.weights == "imagenet"

    # --set and flags stay relative to the current folder.
    config = load_config([path], ["data.source=here"], {"model.weights": "mine.pth"})
    assert (config.data.source, config.model.weights) == ("here", "mine.pth")
    with pytest.raises(ConfigError) as raised:
        require_path(config, "data.source")
    assert str(raised.value).startswith("--set data.source: here not found (relative paths on the command line")
    require_path(config, "model.weights")  # a flag's path is the command's to check (its error quotes it)


def test_a_missing_path_names_the_file_and_the_dotted_key(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cfg").mkdir()
    path = write(tmp_path / "cfg", "model:\n  weights: weights/missing.pth\n", "train.yaml")
    config = load_config([path])
    with pytest.raises(ConfigError) as raised:
        require_path(config, "model.weights")
    assert str(raised.value) == (
        f"{path}: model.weights: {tmp_path / 'cfg' / 'weights' / 'missing.pth'} not found "
        "(relative paths in a config file are read from the file's folder); fix the path"
    )


def test_the_shipped_local_config_finds_its_files_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = load_config([REPO / "configs" / "local.yaml"])
    assert config.workspace == str(REPO / ".dogbreed")
    require_path(config, "data.source")
    require_path(config, "model.weights")


def test_a_partial_edit_of_a_built_in_range_changes_that_key_and_keeps_the_search():
    built_in = load_config().tune.ranges
    edited = load_config([], ["tune.ranges.lr.min=0.0001"]).tune.ranges
    assert list(edited) == list(built_in)  # nothing dropped from the search
    assert edited["lr"].min == 0.0001
    assert edited["lr"].model_dump(exclude={"min"}) == built_in["lr"].model_dump(exclude={"min"})
    assert {name: spec for name, spec in edited.items() if name != "lr"} == {
        name: spec for name, spec in built_in.items() if name != "lr"
    }


def test_a_partial_edit_is_checked_against_the_built_in_range(tmp_path):
    path = write(tmp_path, "tune:\n  ranges:\n    lr: {min: 0.01}\n")
    with pytest.raises(
        ConfigError, match=rf"^{re.escape(str(path))}: tune.ranges.lr: 'min' \(0.01\) must be below 'max' \(0.001\)"
    ):
        load_config([path])


def test_a_range_given_whole_is_the_whole_search(tmp_path):
    path = write(tmp_path, "tune:\n  ranges:\n    lr: {type: continuous, min: 0.0001, max: 0.001}\n")
    ranges = load_config([path]).tune.ranges
    assert list(ranges) == ["lr"] and ranges["lr"].scaling == "Auto"


def test_a_new_range_without_its_type_names_the_layer_and_what_type_takes(tmp_path):
    path = write(tmp_path, "tune:\n  ranges:\n    weight_decay: {min: 0.0, max: 0.1}\n")
    with pytest.raises(ConfigError) as err:
        load_config([path])
    message = str(err.value)
    assert message.startswith(f"{path}: tune.ranges.weight_decay.type: required key is missing: ")
    assert "continuous" in message and "categorical" in message and "built-in defaults" not in message
    with pytest.raises(ConfigError, match=r"^--set tune.ranges.weight_decay.max: tune.ranges.weight_decay.type: required"):
        load_config([], ["tune.ranges.weight_decay.max=0.1"])


def test_a_typo_inside_a_range_gets_a_did_you_mean(tmp_path):
    path = write(tmp_path, "tune:\n  ranges:\n    lr: {type: continuous, min: 0.0001, max: 0.001, scale: Linear}\n")
    with pytest.raises(ConfigError, match=r"tune.ranges.lr.scale: unknown key \(did you mean 'scaling'\?\)"):
        load_config([path])


def test_a_check_across_keys_names_every_layer_that_set_them(tmp_path):
    # It used to blame whichever tune.* key was set last: "--set tune.max_jobs: tune: Grid ...".
    with pytest.raises(ConfigError) as err:
        load_config([], ["tune.strategy=Grid", "tune.max_jobs=3"])
    assert str(err.value).startswith("--set tune.strategy, --set tune.max_jobs: tune: Grid search takes only integer")
    path = write(tmp_path, "tune:\n  strategy: Grid\n")
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(path))}: tune: Grid search"):
        load_config([path])
