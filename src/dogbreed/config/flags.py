"""Config <-> the training job's command-line flags (the job contract, DESIGN section 4).

SageMaker passes each hyperparameter `key: value` as `--key value`, so the keys here are
the flag names themselves. Locally we build the very same argv.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dogbreed.config.schema import Config

# config section.key -> flag name understood by source_dir/train.py
_FLAGS: dict[str, str] = {
    "model.arch": "arch",
    "model.weights": "weights",
    "model.freeze": "freeze",
    "model.head_init": "head-init",
    "model.tta": "tta",
    "train.epochs": "epochs",
    "train.batch_size": "batch-size",
    "train.lr": "lr",
    "train.weight_decay": "weight-decay",
    "train.lr_schedule": "lr-schedule",
    "train.warmup_epochs": "warmup-epochs",
    "train.label_smoothing": "label-smoothing",
    "train.seed": "seed",
    "train.feature_cache": "feature-cache",
    "train.augment_views": "augment-views",
    "train.num_workers": "num-workers",
}


def flag_for(train_key: str) -> str:
    """'batch_size' (a train.* key, as in tune.ranges) -> 'batch-size'."""
    return _FLAGS[f"train.{train_key}"]


def _get(config: Config, dotted: str) -> Any:
    section, key = dotted.split(".")
    return getattr(getattr(config, section), key)


def hyperparameters(config: Config, weights: str | None = None) -> dict[str, Any]:
    """The job's hyperparameters, keyed by flag name. `weights` replaces model.weights
    when the job reads them from a channel or a local copy instead."""
    out = {flag: _get(config, dotted) for dotted, flag in _FLAGS.items()}
    if weights is not None:
        out["weights"] = weights
    return out


def format_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def to_argv(hps: Mapping[str, Any]) -> list[str]:
    argv: list[str] = []
    for key, value in hps.items():
        argv += [f"--{key}", format_value(value)]
    return argv


def with_params(config: Config, params: Mapping[str, Any]) -> Config:
    """A copy of config with tuned train.* values (keys as in tune.ranges) applied."""
    train = config.train.model_copy(update=dict(params))
    train = type(config.train).model_validate(train.model_dump())
    return config.model_copy(update={"train": train})
