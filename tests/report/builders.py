"""Records shaped exactly as breedkit/recorder.py writes them, for rule tests on chosen numbers.

Real runs cannot be made to show every case (a GPU, a starved loader, ten stalled epochs)
on this machine, so the unit tests build records; test_real_runs.py checks the same rules
on records the real train.py wrote.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from dogbreed.report.records import Run, parse_records

T0 = 1_800_000_000.0


def meta(**fields: Any) -> dict[str, Any]:
    base = {
        "type": "meta",
        "time": T0,
        "arch": "mobilenet_v2",
        "device": "cpu",
        "world_size": 1,
        "num_train": 80,
        "num_valid": 10,
        "num_test": 10,
        "num_classes": 10,
        "hyperparameters": {"lr": 0.001, "epochs": 3, "batch_size": 8},
    }
    return {**base, **fields}


def steps(
    losses: Sequence[float | None],
    per_epoch: int = 10,
    grad: Sequence[float | None] | None = None,
    data_time: float = 0.01,
    compute_time: float = 0.04,
    lr: float = 0.001,
) -> list[dict[str, Any]]:
    """One step record per loss, `per_epoch` to an epoch; None is what the recorder writes for nan/inf."""
    out = []
    for i, loss in enumerate(losses):
        norm = grad[i] if grad is not None else 1.0
        out.append(
            {
                "type": "step",
                "time": T0 + 1 + i,
                "epoch": i // per_epoch + 1,
                "step": i % per_epoch + 1,
                "loss": loss,
                "lr": lr,
                "grad_norm": {"head": norm},
                "data_time": data_time,
                "compute_time": compute_time,
                "images_per_sec": 8 / (data_time + compute_time),
            }
        )
    return out


def evals(train: Sequence[float], valid: Sequence[float], acc: float = 0.5) -> list[dict[str, Any]]:
    return [
        {
            "type": "eval",
            "time": T0 + 100 + e,
            "epoch": e + 1,
            "train_loss": t,
            "train_acc": acc,
            "valid_loss": v,
            "valid_acc": acc,
        }
        for e, (t, v) in enumerate(zip(train, valid))
    ]


def system(gpu: Sequence[float | None], cpu: Sequence[float] | None = None, start: float = T0 + 2) -> list[dict[str, Any]]:
    cpu = cpu or [50.0] * len(gpu)
    return [
        {
            "type": "system",
            "time": start + 10 * i,
            "cpu_percent": c,
            "rss_mb": 900.0,
            "gpu_util": g,
            "gpu_mem_mb": None if g is None else 2048.0,
        }
        for i, (g, c) in enumerate(zip(gpu, cpu))
    ]


def lines(*groups: Iterable[dict[str, Any]]) -> list[str]:
    return [json.dumps(record) for group in groups for record in group]


def run(*groups: Iterable[dict[str, Any]]) -> Run:
    return parse_records(lines(*groups))
