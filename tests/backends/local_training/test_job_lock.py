"""One job per folder (#15 item 1): two `train` processes started at once never share a job.

Real concurrent CLI processes on one workspace. A resume that another process already runs
starts a fresh job instead; a job named twice with --name is refused the second time. Every
supervisor started here is stopped before the test ends."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dogbreed.backends.job_layout import JobLayout
from dogbreed.errors import BusyError
from dogbreed.processes import command_line, is_alive
from tests.conftest import dogbreed_cli

pytestmark = pytest.mark.slow

DOGBREED = str(Path(sys.executable).parent / "dogbreed")


@pytest.fixture
def project(tmp_path, dogs_dir, imagenet_weights):
    config = tmp_path / "config.yaml"
    # Many epochs: the jobs must still run while the second command starts; they are stopped.
    config.write_text(
        f"workspace: {tmp_path / '.dogbreed'}\nmodel:\n  weights: {imagenet_weights}\ntrain:\n  epochs: 200\n  num_workers: 0\n"
    )
    result = dogbreed_cli("ingest", str(dogs_dir), "-c", str(config), "--json")
    assert result.returncode == 0, result.stderr
    yield tmp_path, config
    for job in (tmp_path / ".dogbreed" / "jobs").glob("*"):
        _stop(JobLayout(job))
    _stop_strays(tmp_path)


def _stop_strays(root: Path) -> None:
    """Supervisors of this test that status.json does not name (a second one sharing a job,
    as before the lock): found by their command line, stopped, and waited for."""
    if not Path("/proc").is_dir():
        return
    ours = [
        int(p.name)
        for p in Path("/proc").iterdir()
        if p.name.isdigit() and str(root) in " ".join(command_line(int(p.name)) or [])
    ]
    supervisors = [pid for pid in ours if "dogbreed.backends.job_supervisor" in (command_line(pid) or [])]
    for pid in supervisors:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 120
    while any(is_alive(pid) for pid in ours) and time.monotonic() < deadline:
        time.sleep(0.1)


def _stop(layout: JobLayout, timeout_s: float = 120) -> None:
    """SIGTERM the job's supervisor (it stops train.py) and wait until it is gone."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        pid = layout.read_status().get("supervisor_pid")
        if pid and is_alive(pid):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        elif not layout.is_locked():
            return  # no supervisor, and nobody holds the job
        time.sleep(0.1)
    raise AssertionError(f"job {layout.root.name} did not stop")


def _together(*argvs: list[str]) -> list[subprocess.CompletedProcess]:
    """Start the commands at the same moment; wait for all."""
    procs = [subprocess.Popen([DOGBREED, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for argv in argvs]
    results = []
    for argv, proc in zip(argvs, procs):
        out, err = proc.communicate(timeout=300)
        results.append(subprocess.CompletedProcess(argv, proc.returncode, out, err))
    return results


def _starts(layout: JobLayout) -> int:
    """How many runs the job's log shows (the supervisor writes one 'starting:' per run)."""
    if not layout.log.exists():
        return 0
    return sum(line.startswith("[dogbreed] ") and " starting: " in line for line in layout.log.read_text().splitlines())


def _wait_started(layout: JobLayout) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if layout.read_status().get("supervisor_pid"):
            return
        time.sleep(0.05)
    raise AssertionError("the job never started")


def test_two_resumes_at_once_never_share_the_job(project):
    root, config = project
    jobs = root / ".dogbreed" / "jobs"
    first = dogbreed_cli("train", "-c", str(config), "--json", "--no-wait", "--name", "killed-job")
    assert first.returncode == 0, first.stderr
    _wait_started(JobLayout(jobs / "killed-job"))
    _stop(JobLayout(jobs / "killed-job"))  # now a resumable job: `train` resumes it

    args = ["train", "-c", str(config), "--json", "--no-wait"]
    results = _together(args, args)
    assert [r.returncode for r in results] == [0, 0], [r.stderr for r in results]
    names = [json.loads(r.stdout)["training_job"] for r in results]
    assert len(set(names)) == 2 and "killed-job" in names, names
    other = next(name for name in names if name != "killed-job")
    assert "already running elsewhere; started " + other in "".join(r.stderr for r in results)
    for name in names:
        _wait_started(JobLayout(jobs / name))
    # The killed job ran once more (one resume), the other job once: nobody shares a log.
    assert _starts(JobLayout(jobs / "killed-job")) == 2
    assert _starts(JobLayout(jobs / other)) == 1


def test_the_same_name_twice_at_once_is_refused_once(project):
    root, config = project
    args = ["train", "-c", str(config), "--json", "--no-wait", "--name", "only-one"]
    results = _together(args, args)
    codes = sorted(r.returncode for r in results)
    assert codes == [0, 1], [r.stderr for r in results]
    refused = next(r for r in results if r.returncode == 1)
    line = refused.stderr.strip()
    assert len(line.splitlines()) == 1 and refused.stdout == ""
    assert "training job only-one is already running" in line and "--name" in line
    layout = JobLayout(root / ".dogbreed" / "jobs" / "only-one")
    _wait_started(layout)
    assert _starts(layout) == 1


def test_the_lock_is_the_kernels_and_dies_with_its_holder(tmp_path):
    layout = JobLayout(tmp_path / "job")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from dogbreed.backends.job_layout import JobLayout;"
         f"JobLayout(__import__('pathlib').Path({str(layout.root)!r})).lock(); print('held', flush=True); time.sleep(600)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        assert layout.is_locked()
        with pytest.raises(BusyError, match=f"training job job is already running .*pid {holder.pid}"):
            layout.lock(attempts=1)
    finally:
        holder.kill()
        holder.wait()
    assert not layout.is_locked()  # kill -9 leaves no stale lock
    os.close(layout.lock())


def test_a_killed_supervisor_leaves_its_job_locked_while_train_py_runs_on(project):
    """kill -9 of a job's supervisor used to free the job while its train.py ran on (in a
    session of its own): `train --name` of it then resumed a second train.py writing the same
    checkpoints and log, and status called the job Failed. train.py now holds the lock too."""
    tmp_path, config = project
    started = dogbreed_cli("train", "--name", "orphan", "--no-wait", "-c", str(config))
    assert started.returncode == 0, started.stderr
    layout = JobLayout(tmp_path / ".dogbreed" / "jobs" / "orphan")
    _wait_started(layout)
    status = layout.read_status()
    train_pid = status["pid"]
    try:
        os.kill(status["supervisor_pid"], signal.SIGKILL)
        deadline = time.monotonic() + 60
        while is_alive(status["supervisor_pid"]) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert is_alive(train_pid) and layout.is_locked()
        again = dogbreed_cli("train", "--name", "orphan", "-c", str(config))
        assert again.returncode == 1
        assert f"training job orphan is already running (pid {train_pid})" in again.stderr
        assert _starts(layout) == 1  # no second train.py on the same job
        shown = dogbreed_cli("status", "--json", "-c", str(config))
        job = next(row for row in json.loads(shown.stdout)["resources"] if row["name"] == "orphan")
        assert job["state"] == "InProgress"
    finally:
        try:
            os.killpg(train_pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + 120
        while (is_alive(train_pid) or layout.is_locked()) and time.monotonic() < deadline:
            time.sleep(0.1)
    assert not layout.is_locked()
