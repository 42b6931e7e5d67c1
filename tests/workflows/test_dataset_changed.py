"""A dataset folder ingested again (other photos, same path) under a job or a search planned on
it: refused, never trained on as if it were the same data. A tuning job resumed on it would
compare trials of two datasets; a job whose manifest is not the one it was planned on says so."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from dogbreed.backends.base import TrainingRequest
from dogbreed.config import load_config
from dogbreed.config.flags import hyperparameters
from dogbreed.workspace import Workspace
from tests.conftest import EXAMPLES, error_line

pytestmark = pytest.mark.slow


def _fewer_photos(tmp_path: Path) -> Path:
    """The same ten breeds with two photos fewer each: another dataset, the same classes."""
    source = tmp_path / "fewer-photos"
    for folder in sorted(p for p in (EXAMPLES / "dogs").iterdir() if p.is_dir()):
        for photo in sorted(folder.glob("*.jpg"))[2:]:
            (source / folder.name).mkdir(parents=True, exist_ok=True)
            shutil.copy(photo, source / folder.name)
    return source


def test_a_tuning_job_is_not_resumed_on_a_dataset_ingested_again(tune_env, tmp_path):
    tune_env.write_config(tune={"max_jobs": 1})
    assert tune_env.cli("tune", "--name", "tune-data").returncode == 0
    again = tune_env.cli("ingest", str(_fewer_photos(tmp_path)), "--dest", tune_env.dataset_uri, "--prune")
    assert again.returncode == 0, again.stderr

    result = tune_env.cli("tune", "--name", "tune-data", "--set", "tune.max_jobs=2")

    assert result.returncode == 2
    line = error_line(result.stderr)
    assert "tuning job tune-data searched the dataset in" in line and "give a new --name" in line
    assert len(tune_env.ledger.list("trial", parent="tune-data")) == 1  # no trial on the new photos
    # Without a name, the search starts afresh instead of resuming the old one.
    fresh = tune_env.cli("tune", "--set", "tune.max_jobs=1", "--json")
    assert fresh.returncode == 0, fresh.stderr
    assert '"tuning_job": "tune-data"' not in fresh.stdout


def test_a_job_planned_on_another_manifest_is_refused_by_train_py(tune_env):
    from dogbreed.backends.local import LocalBackend

    config = load_config([tune_env.config])
    backend = LocalBackend(config, Workspace(tune_env.workspace))
    request = TrainingRequest(
        name="planned-earlier",
        config=config,
        dataset_uri=tune_env.dataset_uri,
        hyperparameters=hyperparameters(config),
        manifest_sha256="0" * 64,  # what the ledger said when the job was planned
    )
    backend.start_training(request)
    outcome = backend.wait_training("planned-earlier")

    assert outcome.state == "Failed"
    log = Path(outcome.log_uri).read_text()
    assert "changed since this job was planned" in log and "epoch=" not in log


def test_a_stopped_training_job_is_not_resumed_on_a_dataset_ingested_again(tune_env, tmp_path):
    import json
    import os
    import signal
    import time

    from dogbreed.processes import is_alive

    tune_env.write_config(train={"epochs": 1000, "feature_cache": False})
    assert tune_env.cli("train", "--name", "half-done", "--no-wait").returncode == 0
    job = tune_env.workspace / "jobs" / "half-done"
    deadline = time.monotonic() + 240
    while not ((job / "train.log").is_file() and "epoch=1 " in (job / "train.log").read_text()):
        assert time.monotonic() < deadline, "no first epoch"
        time.sleep(0.1)
    supervisor = json.loads((job / "status.json").read_text())["supervisor_pid"]
    os.kill(supervisor, signal.SIGTERM)  # what `train` does on Ctrl-C: a resumable job
    while is_alive(supervisor):
        assert time.monotonic() < deadline, "the job did not stop"
        time.sleep(0.1)
    again = tune_env.cli("ingest", str(_fewer_photos(tmp_path)), "--dest", tune_env.dataset_uri, "--prune")
    assert again.returncode == 0, again.stderr

    result = tune_env.cli("train", "--name", "half-done", "--set", "train.epochs=1000", "--set", "train.feature_cache=false")

    assert result.returncode == 2
    assert "training job half-done began on the dataset in" in error_line(result.stderr)
    assert (job / "train.log").read_text().count("starting:") == 1
