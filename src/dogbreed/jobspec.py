"""The host's view of the training job's contract: its input channels and metric lines.

The metric names live in one file inside the training package
(source_dir/breedkit/metrics.json); train.py prints from it and this module builds the
SageMaker `metric_definitions` and our own log parser from it, so the two cannot drift.
The file is read as data: host code never imports the training package.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

SOURCE_DIR = Path(__file__).parent / "source_dir"
ENTRY_POINT = "train.py"
INFERENCE_ENTRY = "inference.py"

TRAINING_CHANNEL = "training"
WEIGHTS_CHANNEL = "weights"
BUILTIN_WEIGHTS = ("imagenet", "none")  # --weights values the job resolves itself


def weights_channel(
    hyperparameters: dict[str, Any], place: Callable[[str], tuple[str, str]]
) -> tuple[dict[str, str], dict[str, Any]]:
    """The one rule both backends follow for --weights: 'imagenet' and 'none' stay flags; a
    state_dict file travels as its own input channel ('weights'), as SageMaker delivers
    inputs, and --weights becomes the file's name inside that channel.

    `place(weights)` puts the file where the job's channel can be read and returns
    (channel location, file name): a local folder, or an S3 object (an S3Prefix channel of
    one key downloads just that object, under its own name). Returns the channels to add and
    the hyperparameters with --weights rewritten (a copy; the input is left as it was)."""
    weights = str(hyperparameters.get("weights", "none"))
    if weights in BUILTIN_WEIGHTS:
        return {}, dict(hyperparameters)
    location, name = place(weights)
    return {WEIGHTS_CHANNEL: location}, {**hyperparameters, "weights": name}


# A float as Python prints it with a `g` format: 0.8125, 1e-05, nan, inf.
NUMBER = r"([-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|nan|inf))"


@dataclass(frozen=True)
class MetricSpec:
    epoch_key: str
    per_epoch: tuple[str, ...]
    final: tuple[str, ...]
    value_format: str

    @property
    def names(self) -> tuple[str, ...]:
        """Every metric once (the final line repeats valid_* for the kept epoch)."""
        return tuple(dict.fromkeys((*self.per_epoch, *self.final)))

    def regex(self, name: str) -> str:
        # Anchored on a word boundary so 'valid_acc' never matches inside 'xvalid_acc'.
        return rf"\b{re.escape(name)}={NUMBER}"

    def metric_definitions(self) -> list[dict[str, str]]:
        """SageMaker's `metric_definitions`: [{'Name': ..., 'Regex': ...}]."""
        names = (self.epoch_key, *self.names)
        return [{"Name": name, "Regex": self.regex(name)} for name in names]

    def parse_line(self, line: str) -> dict[str, float]:
        """All metrics on one log line, e.g. {'epoch': 3.0, 'valid_acc': 0.81}."""
        found: dict[str, float] = {}
        for name in (self.epoch_key, *self.names):
            match = re.search(self.regex(name), line)
            if match:
                found[name] = float(match.group(1))
        return found


def kept_epoch_metrics(metrics: dict[str, float], history: list[dict[str, float]]) -> dict[str, float]:
    """A job's final metrics, all of the kept epoch (`best_epoch`): train_* and valid_* of
    the same epoch, beside test_*, which were measured on its weights. Each metric's last
    value alone mixes epochs wherever the final line lacks one (jobs from before train_* were
    on it: train_* came from the last epoch, valid_* from the kept one). `last_epoch` is the
    last epoch that ran, so a kept epoch before it shows."""
    spec = metric_spec()
    out = dict(metrics)
    if history:
        out["last_epoch"] = history[-1][spec.epoch_key]
    best = metrics.get("best_epoch")
    # The last row of that epoch: a resumed job's log may repeat an epoch it ran again.
    kept = next((row for row in reversed(history) if row.get(spec.epoch_key) == best), None)
    if kept is not None:
        out.update({name: value for name, value in kept.items() if name in spec.per_epoch})
    return out


@cache
def metric_spec(source_dir: Path = SOURCE_DIR) -> MetricSpec:
    raw = json.loads((source_dir / "breedkit" / "metrics.json").read_text())
    return MetricSpec(
        epoch_key=raw["epoch_key"],
        per_epoch=tuple(raw["per_epoch"]),
        final=tuple(raw["final"]),
        value_format=raw["value_format"],
    )
