"""The HyperparameterTuner of a tuning job, from tune.*, around a trial estimator.

Ranges are keyed by train.* names in the config and by train.py's flag names on SageMaker
(`batch_size` -> `batch-size`): the tuner passes each trial's values as hyperparameters.
"""

from __future__ import annotations

from typing import Any

from dogbreed.aws.session import import_sdk
from dogbreed.config import Config
from dogbreed.config.flags import flag_for
from dogbreed.config.schema import ParamRange
from dogbreed.errors import ConfigError
from dogbreed.jobspec import metric_spec
from dogbreed.tuning.space import build_space, check_search, trial_budget

# Transfer learning is the warm start that stays valid when the dataset, the static
# hyperparameters or the ranges changed since the parent job; IdenticalDataAndAlgorithm is
# refused by the service as soon as one of them differs.
WARM_START_TYPE = "TransferLearning"
MAX_WARM_START_PARENTS = 5  # CreateHyperParameterTuningJob: ParentHyperParameterTuningJobs


def _grid_values(spec: ParamRange) -> list[Any]:
    if spec.type == "integer":
        return list(range(int(spec.min), int(spec.max) + 1))  # type: ignore[arg-type]
    return list(spec.values or [])


def parameter_ranges(config: Config) -> dict[str, Any]:
    """{flag: ContinuousParameter | IntegerParameter | CategoricalParameter}.

    Grid search takes categorical ranges only (the service rejects others), so an integer
    range becomes the categorical list of its values there, as the local Grid does."""
    import_sdk()
    from sagemaker.parameter import CategoricalParameter, ContinuousParameter, IntegerParameter

    tune = config.tune
    ranges: dict[str, Any] = {}
    for key, spec in tune.ranges.items():
        flag = flag_for(key)
        if tune.strategy == "Grid" or spec.type == "categorical":
            ranges[flag] = CategoricalParameter(_grid_values(spec))
        elif spec.type == "integer":
            ranges[flag] = IntegerParameter(int(spec.min), int(spec.max), scaling_type=spec.scaling)  # type: ignore[arg-type]
        else:
            ranges[flag] = ContinuousParameter(spec.min, spec.max, scaling_type=spec.scaling)
    return ranges


def trial_count(config: Config) -> int:
    """How many training jobs the tuning job runs (at most): the same budget the local
    engine spends (tuning/space.py)."""
    return trial_budget(config.tune, build_space(config))


def build_tuner(config: Config, estimator: Any, *, tags: list[dict[str, str]]) -> Any:
    """A sagemaker.tuner.HyperparameterTuner over `estimator` (a trial estimator)."""
    import_sdk()
    from sagemaker.tuner import (
        HyperbandStrategyConfig,
        HyperparameterTuner,
        StrategyConfig,
        WarmStartConfig,
        WarmStartTypes,
    )

    tune = config.tune
    check_search(tune)  # what the service would refuse, in the words the local engine uses
    objective = tune.objective.metric
    kwargs: dict[str, Any] = {
        "objective_metric_name": objective,
        "objective_type": tune.objective.type,
        # The tuner does not take the estimator's metric_definitions: without its own, the
        # trials' AlgorithmSpecification has none and the objective cannot be read.
        "metric_definitions": metric_spec().metric_definitions(),
        "hyperparameter_ranges": parameter_ranges(config),
        "strategy": tune.strategy,
        "max_parallel_jobs": tune.max_parallel_jobs,
        "early_stopping_type": tune.early_stopping,
        "random_seed": tune.seed,
        "tags": tags,
    }
    # Grid: the SDK wants max_jobs=None "to recalculate it later", but then sends
    # MaxNumberOfTrainingJobs=None, which botocore's validator rejects before any request
    # (aws/sagemaker-python-sdk#3439; tests/backends/sagemaker prove the rejection). The API lets
    # Grid omit the limit or give the exact number of combinations: we give that number.
    kwargs["max_jobs"] = trial_count(config)
    if tune.strategy == "Hyperband":
        # Hyperband allots epochs: from one up to train.epochs, which train.py reads as --epochs.
        kwargs["strategy_config"] = StrategyConfig(HyperbandStrategyConfig(min_resource=1, max_resource=config.train.epochs))
    if tune.warm_start_from:
        parents = sorted(set(tune.warm_start_from))
        if len(parents) > MAX_WARM_START_PARENTS:
            raise ConfigError(f"tune.warm_start_from: at most {MAX_WARM_START_PARENTS} parent tuning jobs, got {len(parents)}")
        warm_start = WarmStartConfig(WarmStartTypes(WARM_START_TYPE), parents=set(parents))
        # The SDK keeps parents as a set, and a set of strings iterates in a different order
        # in every process: the request (and a dry run's output) would change run to run.
        # to_input_req only iterates `parents`, so give it the sorted list.
        warm_start.parents = parents
        kwargs["warm_start_config"] = warm_start
    return HyperparameterTuner(estimator, **kwargs)
