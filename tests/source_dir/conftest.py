"""Shared pieces of the training tests: a dataset channel built from the vendored photos, one
feature cache for the whole session (so the backbone runs once per weights), and a helper that
runs source_dir/train.py as the containers do: a subprocess with SageMaker's environment."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.source_dir.datasets import build_channel

REPO = Path(__file__).resolve().parents[2]
SOURCE_DIR = REPO / "src" / "dogbreed" / "source_dir"
TRAIN_PY = SOURCE_DIR / "train.py"
# One thread per process: on a shared 2-core machine, OpenMP threads that wait on each other
# under load made runs several times slower (benchmarks/bench_feature_cache.py --threads 1 vs 2).
THREADS = "1"


@dataclass
class JobRun:
    job: Path
    proc: subprocess.CompletedProcess

    @property
    def model_dir(self) -> Path:
        return self.job / "model"

    @property
    def output_dir(self) -> Path:
        return self.job / "output" / "data"

    @property
    def checkpoint_dir(self) -> Path:
        return self.job / "checkpoints"

    def records(self) -> list[dict]:
        return [json.loads(line) for line in (self.output_dir / "records.jsonl").read_text().splitlines()]

    def metrics(self) -> dict:
        return json.loads((self.output_dir / "metrics.json").read_text())

    def metric_lines(self) -> list[str]:
        return [line for line in self.proc.stdout.splitlines() if line.startswith(("epoch=", "test_"))]


def job_env(job: Path, channel: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """SageMaker's variables for a job folder, as the container (and the local backend) set them."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SM_", "RANK", "WORLD_SIZE", "LOCAL_RANK"))}
    env.update(
        {
            "SM_CHANNEL_TRAINING": str(channel),
            "SM_MODEL_DIR": str(job / "model"),
            "SM_OUTPUT_DATA_DIR": str(job / "output" / "data"),
            "SM_HOSTS": json.dumps(["algo-1"]),
            "SM_CURRENT_HOST": "algo-1",
            "SM_NUM_GPUS": "0",
            "OMP_NUM_THREADS": THREADS,
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra or {})
    return env


def train_argv(*flags: str) -> list[str]:
    return [sys.executable, str(TRAIN_PY), *flags]


def run_train(job: Path, channel: Path, *flags: str, env: dict[str, str] | None = None, check: bool = True) -> JobRun:
    proc = subprocess.run(
        train_argv(*flags),
        cwd=SOURCE_DIR,
        env=job_env(job, channel, env),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"train.py exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return JobRun(job, proc)


@pytest.fixture(scope="session")
def channel(tmp_path_factory, dogs_dir) -> Path:
    """The 10x10 vendored photos as an ingested channel: manifest.json + 8/1/1 per breed."""
    return build_channel(dogs_dir, tmp_path_factory.mktemp("channel") / "data")


@pytest.fixture(scope="session")
def feature_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("feature-cache")


@pytest.fixture(scope="session")
def common_flags(imagenet_weights, feature_cache) -> list[str]:
    """Real weights, frozen backbone, feature cache: the fast, default way to train."""
    return [
        "--arch", "mobilenet_v2", "--weights", str(imagenet_weights), "--freeze", "backbone",
        "--epochs", "5", "--batch-size", "16", "--lr", "0.001", "--weight-decay", "0.01", "--seed", "0",
        "--feature-cache", "true", "--num-workers", "0", "--cache-dir", str(feature_cache),
    ]  # fmt: skip


@pytest.fixture(scope="session")
def reference_run(tmp_path_factory, channel, common_flags) -> JobRun:
    """One real training run whose outputs several tests read."""
    return run_train(tmp_path_factory.mktemp("reference"), channel, *common_flags)


@pytest.fixture
def breedkit(monkeypatch):
    """The breedkit package, imported as the containers do: with source_dir on sys.path.
    torch runs on THREADS threads meanwhile, as the subprocess runs do."""
    import torch

    monkeypatch.syspath_prepend(str(SOURCE_DIR))
    for name in [m for m in sys.modules if m == "breedkit" or m.startswith("breedkit.")]:
        monkeypatch.delitem(sys.modules, name)
    threads = torch.get_num_threads()
    torch.set_num_threads(int(THREADS))
    import breedkit

    yield breedkit
    torch.set_num_threads(threads)


@pytest.fixture
def train_module(breedkit, monkeypatch):
    """source_dir/train.py as a module (get_args_parser, main, cli and its resolvers)."""
    spec = importlib.util.spec_from_file_location("dogbreed_train_under_test", TRAIN_PY)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module
