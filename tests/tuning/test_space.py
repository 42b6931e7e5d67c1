"""tune.ranges -> the search space: typed values, refusals up front, and the same ranges on
Optuna (local) as on the SageMaker HyperparameterTuner."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest

from dogbreed.backends.local_tuning import strategy
from dogbreed.config import load_config
from dogbreed.config.flags import flag_for
from dogbreed.errors import ConfigError, DogbreedError
from dogbreed.tuning.space import apply, build_space, check_search, distributions, grid, grid_points, suggest, trial_budget

REPO = Path(__file__).resolve().parents[2]
HPO = REPO / "configs" / "hpo.yaml"

optuna.logging.set_verbosity(optuna.logging.WARNING)


def config_with(*sets: str, ranges: str | None = None, tmp: Path | None = None):
    """hpo.yaml with --set overrides, or, given `ranges` (a YAML flow mapping), a config whose
    tune.ranges are exactly those (--set merges mappings key by key, so it cannot drop one)."""
    if ranges is None:
        return load_config([HPO], list(sets))
    path = tmp / "ranges.yaml"
    path.write_text(f"tune:\n  ranges: {ranges}\n")
    return load_config([path], list(sets))


def sampled(config, n: int, sampler=None) -> list[dict]:
    space = build_space(config)
    study = optuna.create_study(sampler=sampler or optuna.samplers.RandomSampler(seed=1))
    return [suggest(study.ask(), space) for _ in range(n)]


def test_hpo_yaml_maps_to_typed_optuna_ranges():
    space = {p.name: p for p in build_space(config_with())}
    assert set(space) == {"lr", "epochs", "label_smoothing", "lr_schedule", "batch_size"}
    assert space["lr"].type == "continuous" and space["lr"].log and (space["lr"].low, space["lr"].high) == (3e-5, 1e-3)
    assert space["epochs"].type == "integer" and (space["epochs"].low, space["epochs"].high) == (6, 16)
    assert space["label_smoothing"].type == "continuous" and not space["label_smoothing"].log
    assert space["lr_schedule"].choices == ("cosine", "constant")
    assert space["batch_size"].choices == (16, 32, 64)
    dists = distributions(list(space.values()))
    assert dists["lr"] == optuna.distributions.FloatDistribution(3e-5, 1e-3, log=True)
    assert dists["epochs"] == optuna.distributions.IntDistribution(6, 16)
    assert dists["label_smoothing"] == optuna.distributions.FloatDistribution(0.0, 0.2)
    assert dists["lr_schedule"] == optuna.distributions.CategoricalDistribution(["cosine", "constant"])
    assert dists["batch_size"] == optuna.distributions.CategoricalDistribution([16, 32, 64])


@pytest.mark.filterwarnings("ignore:Pydantic serializer warnings")
def test_sampled_values_arrive_typed_and_validated_in_the_trial_config():
    config = config_with()
    for params in sampled(config, 20):
        trial_config = apply(config, params)
        assert type(trial_config.train.batch_size) is int and trial_config.train.batch_size in (16, 32, 64)
        assert type(trial_config.train.epochs) is int and 6 <= trial_config.train.epochs <= 16
        assert 3e-5 <= trial_config.train.lr <= 1e-3 and 0.0 <= trial_config.train.label_smoothing <= 0.2
        assert trial_config.train.lr_schedule in ("cosine", "constant")
    # A categorical value given as a string (as SageMaker sends it) still becomes an int.
    assert apply(config, {"batch_size": "32"}).train.batch_size == 32
    with pytest.raises(DogbreedError, match="train.batch_size"):
        apply(config, {"batch_size": "many"})


def test_log_scaling_samples_every_decade():
    lrs = [p["lr"] for p in sampled(config_with(), 300)]
    # Linear sampling of [3e-5, 1e-3] would put ~7% of draws below 1e-4; log puts a third there.
    assert sum(lr < 1e-4 for lr in lrs) > 60


def test_reverse_logarithmic_stays_in_range_and_crowds_near_the_top(tmp_path):
    config = config_with(ranges="{lr: {type: continuous, min: 0.5, max: 0.999, scaling: ReverseLogarithmic}}", tmp=tmp_path)
    values = [p["lr"] for p in sampled(config, 300)]
    assert all(0.5 <= v <= 0.999 for v in values)
    assert sum(v > 0.95 for v in values) > 100  # linear would give ~10%


@pytest.mark.parametrize(
    ("ranges", "message"),
    [
        ("{lr: {type: continuous, min: 0.5, max: 2, scaling: ReverseLogarithmic}}", "ReverseLogarithmic"),
        ("{batch_size: {type: categorical, values: [16, 5000]}}", "5000 is not a valid train.batch_size"),
        ("{lr: {type: continuous, min: 0.001, max: 20}}", "20.0 is not a valid train.lr"),
        ("{epochs: {type: continuous, min: 1, max: 4}}", "whole number"),
        ("{batch_size: {type: categorical, values: [16, 32], scaling: Logarithmic}}", "no scaling"),
        ("{}", "empty"),
    ],
)
def test_ranges_no_backend_could_search_are_refused_up_front(ranges, message, tmp_path):
    with pytest.raises(ConfigError, match=message) as err:
        build_space(config_with(ranges=ranges, tmp=tmp_path))
    assert "tune.ranges" in str(err.value)


def test_sagemaker_rules_are_checked_locally_too(tmp_path):
    hyperband = config_with(
        "tune.strategy=Hyperband",
        "tune.early_stopping=Auto",
        ranges="{lr: {type: continuous, min: 0.001, max: 0.1}}",
        tmp=tmp_path,
    )
    with pytest.raises(ConfigError, match="Hyperband"):
        check_search(hyperband.tune)
    with pytest.raises(ConfigError, match="not a metric train.py prints"):
        check_search(config_with("tune.objective.metric=valid_f1").tune)


def test_grid_sampler_visits_every_point_once(tmp_path):
    config = config_with(
        "tune.strategy=Grid",
        "tune.max_parallel_jobs=1",
        ranges="{epochs: {type: integer, min: 1, max: 3}, batch_size: {type: categorical, values: [16, 32]}}",
        tmp=tmp_path,
    )
    space = build_space(config)
    assert trial_budget(config.tune, space) == 6
    study = optuna.create_study(sampler=strategy.make_sampler(config.tune, space))
    seen = []
    for _ in range(6):
        trial = study.ask()
        seen.append(suggest(trial, space))
        study.tell(trial, 0.5)
    key = lambda p: (p["epochs"], p["batch_size"])  # noqa: E731
    assert sorted(seen, key=key) == sorted(grid_points(space), key=key)


def _sagemaker_ranges(config) -> dict[str, dict]:
    from dogbreed.aws.tuner import parameter_ranges

    return {flag: spec.as_tuning_range(flag) for flag, spec in parameter_ranges(config).items()}


@pytest.mark.parametrize(
    ("sets", "ranges"),
    [
        ((), None),
        (("tune.ranges.epochs.scaling=Logarithmic", "tune.ranges.lr.scaling=Linear"), None),
        ((), "{weight_decay: {type: continuous, min: 0.5, max: 0.99, scaling: ReverseLogarithmic}}"),
    ],
)
def test_optuna_and_the_sagemaker_tuner_search_the_same_ranges(sets, ranges, tmp_path):
    config = config_with(*sets, ranges=ranges, tmp=tmp_path)
    space = build_space(config)
    optuna_dists = distributions(space)
    remote = _sagemaker_ranges(config)
    assert {flag_for(p.name) for p in space} == set(remote)
    for param in space:
        theirs, dist = remote[flag_for(param.name)], optuna_dists[param.study_name]
        if param.type == "categorical":
            # The SDK keeps categorical values as text (str of each); train.py's argparse types
            # them back, as Optuna's typed choices are.
            assert theirs["Values"] == [str(choice) for choice in dist.choices]
            continue
        low, high, scaling = float(theirs["MinValue"]), float(theirs["MaxValue"]), theirs["ScalingType"]
        if scaling == "ReverseLogarithmic":
            # Optuna searches 1 - x on a log scale: dense near the top of [min, max].
            assert (dist.low, dist.high, dist.log) == pytest.approx((1 - high, 1 - low, True))
        else:
            # 'Auto' lets SageMaker choose; Optuna cannot, and searches it linearly.
            assert (dist.low, dist.high, dist.log) == (low, high, scaling == "Logarithmic")
        if param.type == "integer":
            assert isinstance(dist, optuna.distributions.IntDistribution)
            assert (theirs["MinValue"], theirs["MaxValue"]) == (str(dist.low), str(dist.high))


def test_grid_enumerates_the_same_values_as_the_sagemaker_grid(tmp_path):
    config = config_with(
        "tune.strategy=Grid",
        "tune.max_parallel_jobs=1",
        ranges="{epochs: {type: integer, min: 2, max: 4}, batch_size: {type: categorical, values: [16, 32]}}",
        tmp=tmp_path,
    )
    from dogbreed.aws.tuner import trial_count

    remote = _sagemaker_ranges(config)
    local = grid(build_space(config))
    assert {flag_for(k): v for k, v in local.items()} == {
        flag: [json.loads(v) for v in spec["Values"]] for flag, spec in remote.items()
    }
    assert trial_budget(config.tune, build_space(config)) == trial_count(config) == 6
