"""Data parallel on two CPU processes (gloo on 127.0.0.1), launched by torchrun as SageMaker's
torch_distributed launches it: one model, one set of metric lines, metrics over all ranks."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest
import torch

from tests.source_dir.conftest import SOURCE_DIR, TRAIN_PY, JobRun, job_env


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_two_process_gloo_run_writes_one_model(tmp_path, channel, common_flags, reference_run):
    launcher = [
        sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc_per_node=2",
        "--master_addr=127.0.0.1", f"--master_port={_free_port()}",
    ]  # fmt: skip
    env = job_env(tmp_path, channel)
    proc = subprocess.run(
        [*launcher, str(TRAIN_PY), *common_flags, "--epochs", "3"],
        cwd=SOURCE_DIR, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    run = JobRun(tmp_path, proc)
    lines = run.metric_lines()
    assert [line.split()[0].split("=")[0] for line in lines] == ["epoch", "epoch", "epoch", "test_loss"]
    model_files = sorted(p.name for p in run.model_dir.iterdir())
    assert model_files == ["classes.json", "code", "hyperparameters.json", "imagenet_head.pth", "model.pth"]
    assert sorted(p.name for p in run.output_dir.iterdir()) == ["evaluation.json", "metrics.json", "records.jsonl"]
    hyperparameters = (run.model_dir / "hyperparameters.json").read_text()
    assert '"world_size": 2' in hyperparameters
    records = run.records()
    assert [r["world_size"] for r in records if r["type"] == "meta"] == [2]  # rank 0 alone records
    # Each rank takes half of each batch list: 80 images / 2 ranks / 16 = 3 steps (the last short).
    assert [r["step"] for r in records if r["type"] == "step" and r["epoch"] == 1] == [1, 2, 3]
    final = run.metrics()["final"]
    # Metrics are summed over ranks: accuracies are multiples of 1/10 on the 10-image splits.
    assert round(final["test_acc"] * 10, 6) == round(final["test_acc"] * 10)
    assert final["test_acc"] >= 0.3
    # evaluation.json gathers both ranks' test predictions back into the split's order: every
    # photo once, its true breed the one its folder names.
    evaluation = json.loads((run.output_dir / "evaluation.json").read_text())
    assert evaluation["num_images"] == 10
    assert sum(count for t, p, count in evaluation["confusion"] if t == p) == round(final["test_acc"] * 10)
    assert sum(count for _, _, count in evaluation["confusion"]) == 10
    labels = {c["folder"]: c["label"] for c in json.loads((run.model_dir / "classes.json").read_text())["classes"]}
    for mistake in evaluation["worst_mistakes"]:
        assert labels[mistake["path"].split("/")[1]] == mistake["true"]
    state = torch.load(run.model_dir / "model.pth", weights_only=True)
    assert not any(key.startswith("module.") for key in state)  # not the DDP wrapper's names
    assert state["classifier.1.weight"].shape == (10, 1280)
