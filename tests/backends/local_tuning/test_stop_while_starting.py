"""A job told to stop while it starts (Ctrl-C or SIGTERM to `train`, or to a tuning worker,
after status.json says "Starting" and before the supervisor names itself there) ends Stopped
with nothing left running. Before, such a job stayed "Starting" for good when the stop came
before its supervisor was launched, and ran on with nobody following when it came after: a
stop found no supervisor pid to signal, and a supervisor signalled before it had set its stop
handler died on the spot, leaving train.py running."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from dogbreed.backends import local_training
from dogbreed.backends.base import TrainingRequest
from dogbreed.backends.job_layout import JobLayout
from dogbreed.config import load_config
from dogbreed.config.flags import hyperparameters
from dogbreed.processes import is_alive
from dogbreed.workspace import Workspace
from tests.conftest import wait_for

pytestmark = pytest.mark.slow

POPEN = subprocess.Popen


def _training(tune_env) -> tuple[local_training.LocalTraining, TrainingRequest, JobLayout]:
    tune_env.write_config(train={"epochs": 1000, "feature_cache": False})  # runs until stopped
    config = load_config([tune_env.config])
    request = TrainingRequest(
        name="starting", config=config, dataset_uri=tune_env.dataset_uri, hyperparameters=hyperparameters(config)
    )
    training = local_training.LocalTraining(config, Workspace(tune_env.workspace))
    return training, request, JobLayout(tune_env.workspace / "jobs" / "starting")


def _kill_group(pid: int | None) -> None:
    if pid and is_alive(pid):
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_a_stop_before_the_supervisor_is_launched_leaves_the_job_stopped(tune_env, monkeypatch):
    training, request, layout = _training(tune_env)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt  # the signal lands just before the supervisor is launched

    monkeypatch.setattr(local_training.subprocess, "Popen", interrupted)
    with pytest.raises(KeyboardInterrupt):
        training.start_training(request)

    status = layout.read_status()
    assert status["state"] == "Stopped" and status["failure"] == "stopped before it started"
    assert not layout.is_locked()
    assert training.describe_training("starting").state == "Stopped"


def test_a_stop_right_after_the_supervisor_is_launched_stops_the_job(tune_env, monkeypatch):
    training, request, layout = _training(tune_env)
    launched = []

    def interrupted(*args, **kwargs):
        launched.append(POPEN(*args, **kwargs))
        raise KeyboardInterrupt  # it runs, and has not yet written its pid to status.json

    monkeypatch.setattr(local_training.subprocess, "Popen", interrupted)
    try:
        with pytest.raises(KeyboardInterrupt):
            training.start_training(request)
        (supervisor,) = launched
        assert supervisor.wait(timeout=120) == 0
        status = layout.read_status()
        assert status["state"] == "Stopped", status
        assert status["supervisor_pid"] == supervisor.pid
        wait_for(lambda: not is_alive(status["pid"]), what="train.py to end", timeout=120)
        assert not layout.is_locked()
    finally:
        for process in launched:
            _kill_group(layout.read_status().get("pid"))
            if process.poll() is None:
                process.kill()
                process.wait()


DRIVER = """
import os, signal, sys
from pathlib import Path
from dogbreed.backends import job_supervisor
from dogbreed.backends.job_layout import JobLayout

class SignalledWhileStarting(job_supervisor.Exec):
    def start(self, request, log):
        os.kill(os.getpid(), signal.SIGTERM)  # a stop that arrives before train.py exists
        return super().start(request, log)

sys.exit(job_supervisor.supervise(JobLayout(Path(sys.argv[1])), SignalledWhileStarting()))
"""


def test_a_supervisor_signalled_before_train_py_starts_stops_it_as_soon_as_it_runs(tmp_path):
    layout = JobLayout(tmp_path / "job")
    layout.root.mkdir()
    argv = [sys.executable, "-c", "import time; time.sleep(300)"]
    layout.request_file.write_text(json.dumps({"argv": argv, "cwd": str(tmp_path), "env": {}}))
    try:
        result = subprocess.run(
            [sys.executable, "-c", DRIVER, str(layout.root)], capture_output=True, text=True, timeout=120
        )  # fmt: skip
        assert result.returncode == 0, (result.returncode, result.stderr)  # not killed by the SIGTERM
        status = layout.read_status()
        assert status["state"] == "Stopped" and status["failure"] == "stopped by request"
        wait_for(lambda: not is_alive(status["pid"]), what="the child to end", timeout=60)
    finally:
        _kill_group(layout.read_status().get("pid"))
