"""Real training jobs for the report tests: one healthy, one diverging on purpose.

Both run the real train.py on the vendored photos with the vendored ImageNet weights:
- the healthy job through `dogbreed train` on the local backend (ledger, job folder, all real);
- the diverging one (--lr 50, beyond what the config allows) as train.py itself under the
  SageMaker environment of the local job layout, then entered in the same ledger.
They share one feature cache, so the backbone runs over the photos once.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, REPO, dogbreed_cli
from tests.report.browser import ensure_chromium
from tests.source_dir.datasets import build_channel

WEIGHTS = EXAMPLES / "weights" / "mobilenet_v2-imagenet1k-from-int8.fp16.pth"
# 80 training photos in batches of 8: 10 steps an epoch, enough for the step-window rules.
EPOCHS, BATCH = 4, 8
DIVERGING_LR = 50


@dataclass(frozen=True)
class TrainedJobs:
    workspace: Path
    healthy: str
    diverged: str
    healthy_answer: dict  # what `dogbreed train --json` answered for the healthy job

    def output(self, job: str) -> Path:
        """The job's SM_OUTPUT_DATA_DIR: records.jsonl, metrics.json, evaluation.json."""
        return self.workspace / "jobs" / job / "output" / "data"

    def records(self, job: str) -> Path:
        return self.output(job) / "records.jsonl"

    def evaluation(self, job: str) -> dict:
        return json.loads((self.output(job) / "evaluation.json").read_text())

    def metrics(self, job: str) -> dict:
        return json.loads((self.output(job) / "metrics.json").read_text())

    def cli(self, *args: str, env: dict | None = None):
        return dogbreed_cli(*args, "--set", f"workspace={self.workspace}", env=env)


def _train_cli(workspace: Path, dataset: Path) -> dict:
    result = dogbreed_cli(
        "train",
        "--dataset",
        str(dataset),
        "--json",
        "--set",
        f"workspace={workspace}",
        "--set",
        f"model.weights={WEIGHTS}",
        "--set",
        f"train.epochs={EPOCHS}",
        "--set",
        f"train.batch_size={BATCH}",
        "--set",
        "train.num_workers=0",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


def _train_diverging(workspace: Path, dataset: Path) -> str:
    """train.py with --lr 50 in a local job folder, exactly as the local backend lays it out."""
    from dogbreed.backends.job_layout import JobLayout, job_argv, job_env
    from dogbreed.jobspec import SOURCE_DIR
    from dogbreed.ledger import Ledger

    name = "report-test-diverged"
    layout = JobLayout(workspace / "jobs" / name)
    layout.make()
    hyperparameters = {
        "arch": "mobilenet_v2",
        "weights": str(WEIGHTS),
        "freeze": "backbone",
        "epochs": EPOCHS,
        "batch-size": BATCH,
        "lr": DIVERGING_LR,
        "weight-decay": 0.01,
        "seed": 0,
        "num-workers": 0,
        "cache-dir": str(workspace / "cache" / "features"),
        "checkpoint-dir": str(layout.checkpoint_dir),
    }
    env = {**os.environ, **job_env(layout, {"training": str(dataset)}, hyperparameters)}
    done = subprocess.run(
        job_argv(hyperparameters), cwd=SOURCE_DIR, env=env, capture_output=True, text=True, timeout=900, check=False
    )
    layout.log.write_text(done.stdout + done.stderr)
    assert done.returncode == 0, done.stderr[-3000:]
    Ledger(workspace / "ledger.sqlite").record(
        "training-job",
        name,
        "local",
        state="Completed",
        meta={"hyperparameters": hyperparameters, "output_uri": str(layout.output_data_dir)},
    )
    return name


@pytest.fixture(scope="session")
def trained(tmp_path_factory) -> TrainedJobs:
    root = tmp_path_factory.mktemp("report-jobs")
    dataset = build_channel(REPO / "examples" / "dogs", root / "data")
    workspace = root / ".dogbreed"
    answer = _train_cli(workspace, dataset)
    diverged = _train_diverging(workspace, dataset)
    return TrainedJobs(workspace, answer["training_job"], diverged, answer)


@pytest.fixture(scope="session")
def chromium() -> str:
    return ensure_chromium()
