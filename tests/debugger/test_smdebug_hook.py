"""train.py --debugger true with the real smdebug: it writes the tensors Debugger's rules read.

smdebug cannot live in the main environment (see requirements.txt beside this file), so these
tests skip there and run in the debugger environment: `make test-debugger`.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

smd = pytest.importorskip(
    "smdebug",
    reason="smdebug is not importable in this interpreter: it needs protobuf<=3.20.3 and numpy<2, "
    "so it has its own environment; run `make test-debugger`",
)

from tests.conftest import EXAMPLES, REPO  # noqa: E402
from tests.source_dir.datasets import build_channel  # noqa: E402

# smdebug's generated protobuf modules use descriptor calls protobuf 3.20 marks deprecated.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

SOURCE_DIR = REPO / "src" / "dogbreed" / "source_dir"
WEIGHTS = EXAMPLES / "weights" / "mobilenet_v2-imagenet1k-from-int8.fp16.pth"


def _run_debugged(root: Path, hook_config: Path | None = None) -> Path:
    """A real 2-epoch job of train.py with the smdebug hook on; returns SM_OUTPUT_DATA_DIR."""
    dataset = build_channel(EXAMPLES / "dogs", root / "data")
    output = root / "output" / "data"
    env = {
        **os.environ,
        "SM_CHANNEL_TRAINING": str(dataset),
        "SM_MODEL_DIR": str(root / "model"),
        "SM_OUTPUT_DATA_DIR": str(output),
        "SM_NUM_GPUS": "0",
    }
    env.pop("SMDEBUG_CONFIG_FILE_PATH", None)
    if hook_config is not None:
        env["SMDEBUG_CONFIG_FILE_PATH"] = str(hook_config)  # where SageMaker's JSON would be
    argv = [
        sys.executable,
        "train.py",
        "--weights",
        str(WEIGHTS),
        "--epochs",
        "2",
        "--batch-size",
        "8",
        # The hook records the training criterion, label-smoothed by default, while valid_loss
        # is plain cross-entropy; without smoothing the two are the same loss and comparable.
        "--label-smoothing",
        "0",
        "--num-workers",
        "0",
        "--checkpoint-dir",
        str(root / "checkpoints"),
        "--cache-dir",
        str(root / "cache"),
        "--debugger",
        "true",
    ]
    done = subprocess.run(argv, cwd=SOURCE_DIR, env=env, capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stderr[-4000:]
    assert "smdebug is not installed" not in done.stderr
    return output


@pytest.fixture(scope="module")
def debugged_job(tmp_path_factory) -> Path:
    """By hand: the hook's own defaults, under <output dir>/debug-output."""
    return _run_debugged(tmp_path_factory.mktemp("debugged"))


@pytest.fixture(scope="module")
def configured_job(tmp_path_factory) -> Path:
    """As on SageMaker: the hook built from a debughookconfig.json, here saving every loss.
    Returns the hook's LocalPath."""
    root = tmp_path_factory.mktemp("configured")
    config = root / "debughookconfig.json"
    config.write_text(json.dumps({
        "LocalPath": str(root / "tensors"),
        "HookParameters": {},
        "CollectionConfigurations": [{"CollectionName": "losses", "CollectionParameters": {"save_interval": "1"}}],
    }))  # fmt: skip
    _run_debugged(root, config)
    return root


def _first_step(output: Path) -> dict:
    for line in (output / "records.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record["type"] == "step":
            return record
    raise AssertionError("no step record")


def test_smdebug_wrote_the_losses_and_gradients_collections(debugged_job):
    from smdebug.trials import create_trial

    trial = create_trial(str(debugged_job / "debug-output"))
    losses = trial.tensor_names(collection="losses")
    gradients = trial.tensor_names(collection="gradients")
    assert losses, trial.tensor_names()
    assert gradients and all(name.startswith("gradient/") for name in gradients)
    for name in losses + gradients:
        assert trial.tensor(name).steps(mode=smd.modes.TRAIN), name


def test_smdebug_and_our_recorder_saw_the_same_first_step(debugged_job):
    """The two instruments agree: smdebug's step-0 loss and gradients are what records.jsonl says."""
    import numpy as np
    from smdebug.trials import create_trial

    trial = create_trial(str(debugged_job / "debug-output"))
    train = smd.modes.TRAIN
    (loss_name,) = trial.tensor_names(collection="losses")
    loss = float(trial.tensor(loss_name).value(0, mode=train))
    grads = [trial.tensor(name).value(0, mode=train) for name in trial.tensor_names(collection="gradients")]
    norm = math.sqrt(sum(float(np.sum(np.square(g, dtype=np.float64))) for g in grads))
    first = _first_step(debugged_job)
    assert (first["epoch"], first["step"]) == (1, 1)
    assert loss == pytest.approx(first["loss"], rel=1e-5)
    # With a frozen backbone every gradient smdebug saw belongs to the head.
    assert norm == pytest.approx(first["grad_norm"]["head"], rel=1e-4)


def test_smdebug_recorded_the_validation_losses_of_every_epoch(configured_job):
    """EVAL-mode losses, as Debugger's overfit rule compares them with TRAIN's: every
    validation batch of every epoch, and each epoch's batch losses bracket the valid_loss our
    metric line reports (the mean over images, weighted by batch size)."""
    from smdebug.trials import create_trial

    trial = create_trial(str(configured_job / "tensors"))
    (loss_name,) = trial.tensor_names(collection="losses")
    tensor = trial.tensor(loss_name)
    records = [json.loads(line) for line in (configured_job / "output" / "data" / "records.jsonl").read_text().splitlines()]
    evals = [record for record in records if record["type"] == "eval"]
    steps = tensor.steps(mode=smd.modes.EVAL)
    # 10 validation photos in batches of 8: two batches per epoch.
    assert len(evals) == 2 and steps == [0, 1, 2, 3], steps
    for epoch, record in enumerate(evals):
        losses = [float(tensor.value(step, mode=smd.modes.EVAL)) for step in steps[2 * epoch : 2 * epoch + 2]]
        assert min(losses) - 1e-5 <= record["valid_loss"] <= max(losses) + 1e-5, (losses, record)
        assert record["valid_loss"] == pytest.approx((8 * losses[0] + 2 * losses[1]) / 10, rel=1e-5)
    assert tensor.steps(mode=smd.modes.TRAIN) == list(range(20))  # 80 photos / 8, two epochs
