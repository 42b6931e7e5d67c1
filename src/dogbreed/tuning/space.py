"""tune.ranges -> the search space, checked once so both backends search the same thing.

A `SearchParam` is the backend-neutral form of one range. The local engine asks an Optuna
trial for values with `suggest` (duck-typed: nothing here imports Optuna until
`distributions`); the SageMaker tuner builds its ParameterRanges from the same YAML, and
tests/tuning/test_space.py compares the two.

Mapping, SageMaker -> Optuna:
    continuous  Linear | Auto        suggest_float(low, high)
    continuous  Logarithmic          suggest_float(low, high, log=True)
    continuous  ReverseLogarithmic   1 - suggest_float(1 - high, 1 - low, log=True)
    integer     Linear | Auto        suggest_int(low, high)
    integer     Logarithmic          suggest_int(low, high, log=True)
    categorical                      suggest_categorical(values)
'Auto' lets SageMaker pick a scale; Optuna cannot, so locally it means Linear.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from itertools import product
from math import prod
from typing import Any, Protocol

from pydantic import ValidationError

from dogbreed.config import Config
from dogbreed.config.flags import with_params
from dogbreed.config.schema import TrainConfig, TuneConfig
from dogbreed.errors import ConfigError, DogbreedError
from dogbreed.jobspec import metric_spec

Value = str | int | float


class SuggestingTrial(Protocol):
    """The part of optuna.Trial that `suggest` uses."""

    def suggest_float(self, name: str, low: float, high: float, *, log: bool = False) -> float: ...

    def suggest_int(self, name: str, low: int, high: int, *, log: bool = False) -> int: ...

    def suggest_categorical(self, name: str, choices: Any) -> Any: ...


@dataclass(frozen=True)
class SearchParam:
    name: str  # the train.* key, as in tune.ranges
    type: str  # continuous | integer | categorical
    low: float | int | None = None
    high: float | int | None = None
    choices: tuple[Value, ...] | None = None
    scaling: str = "Linear"  # Linear | Logarithmic | ReverseLogarithmic ('Auto' resolved to Linear)

    @property
    def log(self) -> bool:
        return self.scaling == "Logarithmic"

    @property
    def study_name(self) -> str:
        """The name the study stores the value under: reverse-log ranges store 1 - value."""
        return f"{self.name}:1-x" if self.scaling == "ReverseLogarithmic" else self.name

    def describe(self) -> dict[str, Any]:
        if self.type == "categorical":
            return {"type": self.type, "values": list(self.choices or ())}
        return {"type": self.type, "min": self.low, "max": self.high, "scaling": self.scaling, "log": self.log}


def _where(name: str) -> str:
    return f"tune.ranges.{name}"


def _check_value(config: Config, name: str, value: Value) -> None:
    # A range whose ends the training config would refuse fails every trial that samples
    # near them; say so before any job starts.
    try:
        with_params(config, {name: value})
    except ValidationError as exc:
        message = exc.errors()[0]["msg"].removeprefix("Value error, ")
        raise ConfigError(f"{_where(name)}: {value!r} is not a valid train.{name} ({message})") from None


def _param(config: Config, name: str, spec: Any) -> SearchParam:
    is_int = TrainConfig.model_fields[name].annotation is int
    if spec.type == "categorical":
        if spec.scaling != "Auto":
            raise ConfigError(f"{_where(name)}: a categorical range has no scaling; remove 'scaling: {spec.scaling}'")
        for value in spec.values:
            _check_value(config, name, value)
        return SearchParam(name, "categorical", choices=tuple(spec.values))
    if is_int and spec.type == "continuous":
        raise ConfigError(f"{_where(name)}: train.{name} is a whole number; use type: integer or categorical")
    if spec.scaling == "ReverseLogarithmic" and (spec.type != "continuous" or not 0 <= spec.min < spec.max < 1):
        # SageMaker's rule: reverse-log scaling is for continuous ranges inside [0, 1).
        raise ConfigError(f"{_where(name)}: ReverseLogarithmic scaling needs a continuous range within 0 <= min < max < 1")
    low, high = (int(spec.min), int(spec.max)) if spec.type == "integer" else (float(spec.min), float(spec.max))
    for value in (low, high):
        _check_value(config, name, value)
    scaling = "Linear" if spec.scaling == "Auto" else spec.scaling
    return SearchParam(name, spec.type, low=low, high=high, scaling=scaling)


def build_space(config: Config) -> list[SearchParam]:
    """The checked search space of config.tune.ranges, in their YAML order. ConfigError (exit 2)
    for a range neither backend could search."""
    if not config.tune.ranges:
        raise ConfigError("tune.ranges is empty: give at least one train.* setting to search")
    return [_param(config, name, spec) for name, spec in config.tune.ranges.items()]


def check_search(tune: TuneConfig) -> None:
    """What SageMaker's tuner refuses, refused for both backends before anything runs, so a
    local rehearsal cannot pass a config the SageMaker run would reject."""
    if tune.objective.metric not in metric_spec().names:
        raise ConfigError(
            f"tune.objective.metric: {tune.objective.metric!r} is not a metric train.py prints ({', '.join(metric_spec().names)})"
        )
    if tune.strategy == "Hyperband" and tune.early_stopping != "Off":
        raise ConfigError("tune.early_stopping must be Off with the Hyperband strategy: Hyperband stops trials itself")


def trial_budget(tune: TuneConfig, space: list[SearchParam]) -> int:
    """How many trials a search runs: max_jobs, or for Grid the whole grid, as SageMaker
    computes MaxNumberOfTrainingJobs for Grid search itself."""
    if tune.strategy == "Grid":
        return grid_size(space)
    return tune.max_jobs


def suggest(trial: SuggestingTrial, space: list[SearchParam]) -> dict[str, Value]:
    """One point of the space, keyed by train.* name, with the types train.* expects."""
    params: dict[str, Value] = {}
    for param in space:
        if param.type == "categorical":
            params[param.name] = trial.suggest_categorical(param.name, list(param.choices or ()))
        elif param.type == "integer":
            params[param.name] = trial.suggest_int(param.name, int(param.low), int(param.high), log=param.log)
        elif param.scaling == "ReverseLogarithmic":
            mirrored = trial.suggest_float(param.study_name, 1 - float(param.high), 1 - float(param.low), log=True)
            params[param.name] = 1 - mirrored
        else:
            params[param.name] = trial.suggest_float(param.name, float(param.low), float(param.high), log=param.log)
    return params


def apply(config: Config, params: Mapping[str, Value]) -> Config:
    """config with a trial's params, validated and typed (a batch size arrives as an int)."""
    try:
        return with_params(config, params)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise DogbreedError(f"trial parameter train.{where}: {first['msg']}; got {first.get('input')!r}") from None


def distributions(space: list[SearchParam]) -> dict[str, Any]:
    """The Optuna distributions `suggest` samples from, keyed by the study's param names."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    out: dict[str, Any] = {}
    for param in space:
        if param.type == "categorical":
            out[param.study_name] = CategoricalDistribution(list(param.choices or ()))
        elif param.type == "integer":
            out[param.study_name] = IntDistribution(int(param.low), int(param.high), log=param.log)
        elif param.scaling == "ReverseLogarithmic":
            out[param.study_name] = FloatDistribution(1 - float(param.high), 1 - float(param.low), log=True)
        else:
            out[param.study_name] = FloatDistribution(float(param.low), float(param.high), log=param.log)
    return out


def grid(space: list[SearchParam]) -> dict[str, list[Value]]:
    """Every value of every range, for Grid search (integer and categorical ranges only)."""
    out: dict[str, list[Value]] = {}
    for param in space:
        if param.type == "categorical":
            out[param.name] = list(param.choices or ())
        elif param.type == "integer":
            out[param.name] = list(range(int(param.low), int(param.high) + 1))
        else:
            raise ConfigError(f"{_where(param.name)}: Grid search cannot enumerate a continuous range")
    return out


def grid_size(space: list[SearchParam]) -> int:
    return prod(len(values) for values in grid(space).values())


def grid_points(space: list[SearchParam]) -> list[dict[str, Value]]:
    """All points of the grid, in a stable order (for plans and tests)."""
    axes = grid(space)
    return [dict(zip(axes, point)) for point in product(*axes.values())]


def describe(space: list[SearchParam]) -> dict[str, dict[str, Any]]:
    return {param.name: param.describe() for param in space}
