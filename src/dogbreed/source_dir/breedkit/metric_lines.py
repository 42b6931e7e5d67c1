"""The job's metric lines, printed from metrics.json (the host builds its regexes from the
same file: src/dogbreed/jobspec.py), e.g.

    epoch=3 train_loss=0.912 train_acc=0.5 valid_loss=0.655 valid_acc=0.8125
    test_loss=0.702 test_acc=0.79
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

METRICS_FILE = Path(__file__).with_name("metrics.json")


@dataclass(frozen=True)
class MetricNames:
    epoch_key: str
    per_epoch: tuple[str, ...]
    final: tuple[str, ...]
    value_format: str

    def _pairs(self, names: tuple[str, ...], values: dict[str, float]) -> list[str]:
        missing = [n for n in names if n not in values]
        if missing:
            raise KeyError(f"metric line lacks {missing}")
        return [f"{name}={format(float(values[name]), self.value_format)}" for name in names]

    def epoch_line(self, epoch: int, values: dict[str, float]) -> str:
        return " ".join([f"{self.epoch_key}={int(epoch)}", *self._pairs(self.per_epoch, values)])

    def final_line(self, values: dict[str, float]) -> str:
        return " ".join(self._pairs(self.final, values))


def load_metric_names(path: Path = METRICS_FILE) -> MetricNames:
    raw = json.loads(Path(path).read_text())
    return MetricNames(raw["epoch_key"], tuple(raw["per_epoch"]), tuple(raw["final"]), raw["value_format"])
