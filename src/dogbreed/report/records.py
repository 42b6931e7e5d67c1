"""The training job's flight records (records.jsonl), read into one typed `Run`.

The job's recorder (source_dir/breedkit/recorder.py) writes one JSON object per line with a
"type": meta, step, eval, system, final. This module only reads: it never imports the
training package (host code must not), so the field names are spelled here once more and
the tests read records that the real train.py wrote.

Reading is tolerant, because a report is most wanted for a job that went wrong:
- a line cut short by a kill, or an unknown "type", is skipped and noted in `problems`;
- a missing optional field is None ("not recorded");
- the recorder writes nan and inf as null to keep strict JSON, so a null *measurement*
  (loss, gradient norm) reads as nan ("recorded, not finite"), while a null *reading*
  (gpu_util without a GPU) stays None;
- a resumed job appends a new "meta" and re-runs an epoch: the later record of an
  (epoch, step) or of an epoch's evaluation wins.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RECORDS_FILE = "records.jsonl"
TYPES = ("meta", "step", "eval", "system", "final")


@dataclass(frozen=True)
class Step:
    index: int  # 1-based position among all steps of the run, across epochs
    epoch: int
    step: int
    loss: float | None
    lr: float | None
    grad_norm: dict[str, float]  # group -> L2 norm (nan when not finite)
    data_time: float | None
    compute_time: float | None
    images_per_sec: float | None
    time: float | None


@dataclass(frozen=True)
class Evaluation:
    epoch: int
    train_loss: float | None
    train_acc: float | None
    valid_loss: float | None
    valid_acc: float | None
    time: float | None
    end_index: int | None = None  # index of the epoch's last step, to plot against steps


@dataclass(frozen=True)
class Sample:
    time: float
    cpu_percent: float | None  # of the training process: 100 = one core busy
    rss_mb: float | None
    gpu_util: float | None  # percent; None without a GPU
    gpu_mem_mb: float | None


@dataclass
class Run:
    meta: dict[str, Any] = field(default_factory=dict)  # the latest meta record
    steps: list[Step] = field(default_factory=list)
    evaluations: list[Evaluation] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    final: dict[str, Any] | None = None
    starts: int = 0  # meta records: 1 per start, more when the job resumed
    problems: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.steps or self.evaluations or self.samples or self.final)

    @property
    def start_time(self) -> float | None:
        times = [s.time for s in self.steps if s.time is not None] + [s.time for s in self.samples]
        return min(times) if times else None

    @property
    def has_gpu(self) -> bool:
        device = str(self.meta.get("device") or "")
        return device.startswith("cuda") or any(s.gpu_util is not None for s in self.samples)


def _reading(record: dict[str, Any], key: str) -> float | None:
    """A value that may legitimately be absent: null or missing -> None."""
    value = record.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _measurement(record: dict[str, Any], key: str) -> float | None:
    """A value the job computed: missing -> None, null (the recorder's nan/inf) -> nan."""
    if key not in record:
        return None
    value = record[key]
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _int(record: dict[str, Any], key: str) -> int | None:
    value = record.get(key)
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _grad_norms(record: dict[str, Any]) -> dict[str, float]:
    raw = record.get("grad_norm")
    if not isinstance(raw, dict):
        return {}
    norms: dict[str, float] = {}
    for group, value in raw.items():
        if value is None:
            norms[str(group)] = math.nan
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            norms[str(group)] = float(value)
    return norms


def parse_records(lines: Iterable[str]) -> Run:
    """A Run from records.jsonl lines (pure: no I/O)."""
    run = Run()
    steps: dict[tuple[int, int], dict[str, Any]] = {}
    evaluations: dict[int, dict[str, Any]] = {}
    for number, line in enumerate(lines, start=1):
        line = line.strip()
        if not line:
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            run.problems.append(f"line {number}: not JSON (cut short by a kill?)")
            continue
        kind = record.get("type") if isinstance(record, dict) else None
        if kind == "meta":
            run.meta = {k: v for k, v in record.items() if k != "type"}
            run.starts += 1
        elif kind == "step":
            epoch, step = _int(record, "epoch"), _int(record, "step")
            if epoch is None or step is None:
                run.problems.append(f"line {number}: step record without epoch/step")
                continue
            steps.pop((epoch, step), None)  # re-insert so the later run's order counts
            steps[(epoch, step)] = record
        elif kind == "eval":
            epoch = _int(record, "epoch")
            if epoch is None:
                run.problems.append(f"line {number}: eval record without epoch")
                continue
            evaluations[epoch] = record
        elif kind == "system":
            when = _reading(record, "time")
            if when is None:
                run.problems.append(f"line {number}: system record without time")
                continue
            run.samples.append(
                Sample(
                    time=when,
                    cpu_percent=_reading(record, "cpu_percent"),
                    rss_mb=_reading(record, "rss_mb"),
                    gpu_util=_reading(record, "gpu_util"),
                    gpu_mem_mb=_reading(record, "gpu_mem_mb"),
                )
            )
        elif kind == "final":
            run.final = {k: v for k, v in record.items() if k != "type"}
        else:
            run.problems.append(f"line {number}: unknown record type {kind!r}")

    last_index_of_epoch: dict[int, int] = {}
    for index, key in enumerate(sorted(steps), start=1):
        record = steps[key]
        run.steps.append(
            Step(
                index=index,
                epoch=key[0],
                step=key[1],
                loss=_measurement(record, "loss"),
                lr=_reading(record, "lr"),
                grad_norm=_grad_norms(record),
                data_time=_reading(record, "data_time"),
                compute_time=_reading(record, "compute_time"),
                images_per_sec=_reading(record, "images_per_sec"),
                time=_reading(record, "time"),
            )
        )
        last_index_of_epoch[key[0]] = index
    for epoch in sorted(evaluations):
        record = evaluations[epoch]
        run.evaluations.append(
            Evaluation(
                epoch=epoch,
                train_loss=_measurement(record, "train_loss"),
                train_acc=_reading(record, "train_acc"),
                valid_loss=_measurement(record, "valid_loss"),
                valid_acc=_reading(record, "valid_acc"),
                time=_reading(record, "time"),
                end_index=last_index_of_epoch.get(epoch),
            )
        )
    run.samples.sort(key=lambda sample: sample.time)
    return run


def read_records(path: Path) -> Run:
    """The Run recorded in a records.jsonl file (or in the folder that holds one)."""
    path = Path(path)
    if path.is_dir():
        path = path / RECORDS_FILE
    with path.open(encoding="utf-8", errors="replace") as handle:
        return parse_records(handle)
