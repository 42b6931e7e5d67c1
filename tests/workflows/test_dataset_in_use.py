"""A dataset folder is never rewritten under a job that reads it: `ingest` into it while a
`train` runs is refused naming the job's pid, and a job does not start reading a folder an
ingest is writing. Before, a re-ingest of another source with --prune replaced and deleted
photos under the running job (one that read some of each trained on a mix of two datasets)."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
from pathlib import Path

import pytest

from dogbreed.processes import is_alive
from tests.conftest import EXAMPLES, error_line, wait_for

pytestmark = pytest.mark.slow


def _other_source(tmp_path: Path) -> Path:
    """Half of the vendored breeds: another dataset for the same destination."""
    source = tmp_path / "fewer-breeds"
    for folder in sorted(p for p in (EXAMPLES / "dogs").iterdir() if p.is_dir())[:5]:
        shutil.copytree(folder, source / folder.name)
    return source


def test_ingest_into_a_dataset_a_running_job_reads_is_refused_naming_it(tune_env, tmp_path):
    tune_env.write_config(train={"epochs": 1000, "feature_cache": False})
    dataset = Path(tune_env.dataset_uri)
    manifest = (dataset / "manifest.json").read_bytes()
    started = tune_env.cli("train", "--name", "reader", "--no-wait", "--json")
    assert started.returncode == 0, started.stderr
    status = tune_env.workspace / "jobs" / "reader" / "status.json"
    log = tune_env.workspace / "jobs" / "reader" / "train.log"
    try:
        wait_for(lambda: log.is_file() and "epoch=1 " in log.read_text(), "the job's first epoch")
        train_py = json.loads(status.read_text())["pid"]

        result = tune_env.cli("ingest", str(_other_source(tmp_path)), "--dest", str(dataset), "--prune")

        assert result.returncode == 1
        assert error_line(result.stderr) == (
            f"error: {dataset} is being read by a training job (pid {train_py}); wait for it to end "
            "(dogbreed status), or ingest into another --dest"
        )
        assert (dataset / "manifest.json").read_bytes() == manifest
        assert len(list((dataset / "train").iterdir())) == 10  # nothing pruned under the job
    finally:
        supervisor = json.loads(status.read_text()).get("supervisor_pid")
        if supervisor and is_alive(supervisor):
            os.kill(supervisor, signal.SIGTERM)
            wait_for(lambda: not is_alive(supervisor), "the job to stop", timeout=60)

    # The job is over: the same ingest now goes ahead.
    result = tune_env.cli("ingest", str(_other_source(tmp_path / "again")), "--dest", str(dataset), "--prune")
    assert result.returncode == 0, result.stderr
    assert len(list((dataset / "train").iterdir())) == 5


def test_a_job_does_not_start_reading_a_dataset_an_ingest_is_writing(tune_env):
    tune_env.write_config(train={"epochs": 1})
    fd = os.open(tune_env.dataset_uri, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # what `dogbreed ingest` holds while it writes there
        result = tune_env.cli("train", "--name", "early")
    finally:
        os.close(fd)
    assert result.returncode == 1
    log = (tune_env.workspace / "jobs" / "early" / "train.log").read_text()
    assert f"train.py: error: {tune_env.dataset_uri} is being written by `dogbreed ingest` right now" in log
    assert "epoch=" not in log
