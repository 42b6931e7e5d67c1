"""records.jsonl: the documented records (breedkit/recorder.py), from real runs."""

from __future__ import annotations

import json
import math
import os

import pytest

from tests.source_dir.conftest import run_train

STEP_FIELDS = {
    "type", "time", "epoch", "step", "loss", "lr", "grad_norm", "data_time", "compute_time", "images_per_sec",
}  # fmt: skip
META_FIELDS = {
    "type", "time", "arch", "hyperparameters", "device", "world_size", "num_train", "num_valid", "num_test",
    "num_classes", "torch_version", "feature_cache", "resumed_from_epoch", "cpu_count", "torch_threads",
}  # fmt: skip
EVAL_FIELDS = {"type", "time", "epoch", "train_loss", "train_acc", "valid_loss", "valid_acc"}
SYSTEM_FIELDS = {"type", "time", "cpu_percent", "rss_mb", "gpu_util", "gpu_mem_mb"}
FINAL_FIELDS = {"type", "time", "best_epoch", "test_loss", "test_acc", "train_seconds", "timing"}
PHASES = {"startup", "setup", "features", "training", "evaluation", "writing"}


@pytest.mark.slow
def test_records_have_the_documented_fields(reference_run):
    text = (reference_run.output_dir / "records.jsonl").read_text()
    records = [json.loads(line) for line in text.splitlines()]  # every line is strict JSON
    by_type: dict[str, list[dict]] = {}
    for record in records:
        by_type.setdefault(record["type"], []).append(record)
    assert set(by_type) == {"meta", "step", "eval", "system", "final"}
    assert records[0]["type"] == "meta" and records[1]["type"] == "system"  # then a first sample
    assert all(set(r) == STEP_FIELDS for r in by_type["step"])
    assert all(set(r) == EVAL_FIELDS for r in by_type["eval"])
    assert all(set(r) == SYSTEM_FIELDS for r in by_type["system"])
    (meta,) = by_type["meta"]
    (final,) = by_type["final"]
    assert set(meta) == META_FIELDS and set(final) == FINAL_FIELDS
    # Where the wall time went: every phase, none negative, no more than the process lived.
    assert set(final["timing"]) == PHASES and all(seconds >= 0 for seconds in final["timing"].values())
    assert sum(final["timing"].values()) >= final["train_seconds"] - 1e-3

    assert meta["arch"] == "mobilenet_v2" and meta["num_classes"] == 10 and meta["world_size"] == 1
    assert (meta["num_train"], meta["num_valid"], meta["num_test"]) == (80, 10, 10)
    assert meta["hyperparameters"]["lr"] == 0.001 and meta["feature_cache"] is True
    assert meta["cpu_count"] == os.cpu_count() and 1 <= meta["torch_threads"] <= 1024
    # 80 images in batches of 16: 5 steps in each of 5 epochs.
    assert [(r["epoch"], r["step"]) for r in by_type["step"]] == [(e, s) for e in range(1, 6) for s in range(1, 6)]
    for step in by_type["step"]:
        assert set(step["grad_norm"]) == {"head"}  # the backbone is frozen: no gradients there
        assert step["grad_norm"]["head"] > 0
        assert step["data_time"] >= 0 and step["compute_time"] > 0
        assert step["images_per_sec"] > 0
    # The default schedule: one epoch (5 steps) of linear warm-up to lr, then a half cosine.
    expected_lr = [0.001 * (i + 1) / 5 for i in range(5)] + [0.0005 * (1 + math.cos(math.pi * i / 20)) for i in range(20)]
    assert [r["lr"] for r in by_type["step"]] == pytest.approx(expected_lr)
    metrics = reference_run.metrics()
    assert [r["valid_acc"] for r in by_type["eval"]] == [row["valid_acc"] for row in metrics["history"]]
    assert final["test_acc"] == metrics["final"]["test_acc"] and final["best_epoch"] == metrics["final"]["best_epoch"]
    system = by_type["system"][-1]
    assert system["rss_mb"] > 50 and system["gpu_util"] is None and system["gpu_mem_mb"] is None
    times = [r["time"] for r in records]
    assert times == sorted(times)


@pytest.mark.slow
def test_unfrozen_layers_get_their_own_gradient_groups(tmp_path, channel, common_flags):
    small = ["--epochs", "1", "--max-batches", "1", "--crop", "96", "--resize", "112"]
    flags = [*common_flags, "--freeze", "features.17", *small]
    records = run_train(tmp_path, channel, *flags).records()
    steps = [r for r in records if r["type"] == "step"]
    assert steps and set(steps[0]["grad_norm"]) == {"head", "backbone.features.17", "backbone.features.18"}
    (meta,) = [r for r in records if r["type"] == "meta"]
    assert meta["feature_cache"] is False  # a training backbone cannot be cached


@pytest.mark.slow
def test_a_huge_learning_rate_shows_as_diverging_loss(tmp_path, channel, common_flags):
    """What the report's rules look for: lr=50 blows the loss up by orders of magnitude."""
    # A random head (starts near uniform) and a constant rate from the first step.
    flags = [*common_flags, "--lr", "50", "--head-init", "random", "--lr-schedule", "constant", "--warmup-epochs", "0"]
    records = run_train(tmp_path, channel, *flags).records()
    steps = [r for r in records if r["type"] == "step"]
    first = steps[0]["loss"]
    assert first == pytest.approx(math.log(10), rel=0.3)  # a fresh head starts near uniform
    assert max(r["loss"] if r["loss"] is not None else math.inf for r in steps) > 1000 * first
    # Every epoch's mean training loss stays far above where it started. (Cross-entropy's
    # gradient is bounded, so the loss, not the gradient norm, is the signal.)
    epochs = [r for r in records if r["type"] == "eval"]
    assert len(epochs) == 5 and all(r["train_loss"] is None or r["train_loss"] > 10 * first for r in epochs)
