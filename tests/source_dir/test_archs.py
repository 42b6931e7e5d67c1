"""Every supported architecture goes the whole way with `weights: none` (no download): built,
features cached, a training step, evaluation.json, and the model it writes served by
inference.py with breed names."""

from __future__ import annotations

import importlib
import json
import sys

import pytest

from tests.source_dir.conftest import run_train
from tests.source_dir.test_models import ARCHS_IN_CONFIG


@pytest.mark.slow
@pytest.mark.parametrize("arch", ARCHS_IN_CONFIG)
def test_arch_builds_caches_trains_and_serves(tmp_path, channel, predict_dir, arch):
    run = run_train(
        tmp_path / "job", channel,
        "--arch", arch, "--weights", "none", "--epochs", "1", "--batch-size", "4", "--max-batches", "1",
        "--num-workers", "0", "--cache-dir", str(tmp_path / "cache"), "--tta", "flip",
    )  # fmt: skip
    assert "feature cache: extracted" in run.proc.stderr
    assert "head: random init (the weights carry no pretrained ImageNet classifier" in run.proc.stderr
    assert [line.split("=")[0] for line in run.metric_lines()] == ["epoch", "test_loss"]
    assert json.loads((run.output_dir / "evaluation.json").read_text())["num_images"] == 4
    assert not (run.model_dir / "imagenet_head.pth").exists()

    sys.path.insert(0, str(run.model_dir / "code"))
    try:
        sys.modules.pop("inference", None)
        inference = importlib.import_module("inference")
        model = inference.model_fn(str(run.model_dir))
        photo = predict_dir / "Beagle_01141.jpg"
        text, _ = inference.output_fn(inference.predict_fn(inference.input_fn(photo.read_bytes(), "image/jpeg"), model), None)
    finally:
        sys.path.remove(str(run.model_dir / "code"))
        sys.modules.pop("inference", None)
    (answer,) = json.loads(text)["predictions"]
    labels = {c["label"] for c in json.loads((run.model_dir / "classes.json").read_text())["classes"]}
    assert answer["top"][0]["label"] in labels
    assert answer["dog_probability"] is None  # random weights carry no ImageNet head: no made-up value
