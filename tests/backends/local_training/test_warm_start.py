"""A job forked from a warm process behaves as the same job exec'd: same output, exit codes,
tracebacks, stop, detachment. Each job is started by tests/backends/local_training/warm_driver.py in its
own process (never by forking pytest), which exits at once: the job must outlive it."""

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
from dogbreed.backends.local_tuning.warm_start import FORKED_NOTE
from dogbreed.processes import is_alive

DRIVER = Path(__file__).with_name("warm_driver.py")
REPO = Path(__file__).resolve().parents[3]

SCRIPT = """\
import atexit, os, signal, sys, time

import jobhelper  # imported by the warm-up: a forked run finds it already loaded

def main():
    print("warm=" + str(jobhelper.LOADED_IN != os.getpid()))
    print("argv=" + repr(sys.argv))
    print("cwd=" + os.getcwd())
    print("var=" + os.environ.get("JOB_VAR", "-") + " unset=" + os.environ.get("ONLY_IN_DRIVER", "-"))
    print("path0=" + sys.path[0])
    print("own_session=" + str(os.getsid(0) == os.getpid()))
    print("stdin_empty=" + str(sys.stdin.read() == ""))
    print("sigterm_default=" + str(signal.getsignal(signal.SIGTERM) == signal.SIG_DFL))
    print("to stderr", file=sys.stderr)
    atexit.register(lambda: print("atexit ran"))
    mode = os.environ["MODE"]
    if mode == "exit3":
        sys.exit(3)
    if mode == "message":
        sys.exit("bad input")
    if mode == "raise":
        raise RuntimeError("boom")
    if mode == "interrupt":
        raise KeyboardInterrupt
    if mode == "sleep":
        print("sleeping", flush=True)
        time.sleep(120)

if __name__ == "__main__":
    main()
"""


@pytest.fixture
def source(tmp_path: Path) -> Path:
    folder = tmp_path / "src"
    folder.mkdir()
    (folder / "job.py").write_text(SCRIPT)
    (folder / "jobhelper.py").write_text("import os\nLOADED_IN = os.getpid()\n")
    (tmp_path / "cwd").mkdir()
    return folder


def start(tmp_path: Path, source: Path, mode: str, how: str) -> JobLayout:
    layout = JobLayout(tmp_path / how / "job")
    layout.make()
    request = {
        "argv": [sys.executable, str(source / "job.py"), "--flag", "x"],
        "cwd": str(tmp_path / "cwd"),
        "env": {"JOB_VAR": "v", "MODE": mode, "PYTHONUNBUFFERED": "1"},
        "processes": 1,
    }
    layout.request_file.write_text(json.dumps(request))
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "ONLY_IN_DRIVER": "d"}
    args = [sys.executable, str(DRIVER), str(layout.root), str(source), "job.py", *(["exec"] if how == "exec" else [])]
    # A timeout here means the job kept the driver's stdout pipe open: it did not detach.
    done = subprocess.run(args, capture_output=True, text=True, timeout=60, env=env, check=False)
    assert done.returncode == 0, done.stderr
    return layout


def wait_ended(layout: JobLayout, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = layout.read_status()
        if status.get("state") in ("Completed", "Failed", "Stopped"):
            return status
        time.sleep(0.05)
    raise AssertionError(f"job in {layout.root} did not end: {layout.read_status()}")


def job_output(layout: JobLayout) -> list[str]:
    """What the script printed: the log without the supervisor's own lines."""
    return [line for line in layout.log.read_text().splitlines() if not line.startswith("[dogbreed]")]


@pytest.mark.parametrize(
    ("mode", "state", "exit_code"),
    [
        ("ok", "Completed", 0),
        ("exit3", "Failed", 3),
        ("message", "Failed", 1),
        ("raise", "Failed", 1),
        ("interrupt", "Failed", -signal.SIGINT),
    ],
)
def test_a_forked_job_prints_and_exits_exactly_as_the_exec_one(tmp_path, source, mode, state, exit_code):
    forked = start(tmp_path, source, mode, "fork")
    execd = start(tmp_path, source, mode, "exec")
    forked_status, exec_status = wait_ended(forked), wait_ended(execd)

    assert (exec_status["state"], exec_status["exit_code"]) == (state, exit_code)
    assert (forked_status["state"], forked_status["exit_code"]) == (state, exit_code)
    assert forked_status.get("failure") == exec_status.get("failure")
    if mode == "raise":
        assert forked_status["failure"] == "RuntimeError: boom"  # not the supervisor's own last line
    # Line for line the same output, tracebacks included (frames start at the script),
    # except that only the forked run found the script's import already done.
    fork_lines, exec_lines = job_output(forked), job_output(execd)
    assert fork_lines[0] == "warm=True" and exec_lines[0] == "warm=False"
    assert fork_lines[1:] == exec_lines[1:]
    assert f"argv={[str(source / 'job.py'), '--flag', 'x']!r}" in fork_lines
    assert f"cwd={tmp_path / 'cwd'}" in fork_lines and f"path0={source}" in fork_lines
    # The job's environment replaces the launcher's; the launcher's own variables remain,
    # as with exec (the supervisor passes its environment on, plus the job's).
    assert "var=v unset=d" in fork_lines
    for line in ("own_session=True", "stdin_empty=True", "sigterm_default=True", "to stderr", "atexit ran"):
        assert line in fork_lines
    assert FORKED_NOTE in forked.log.read_text().splitlines()[1]
    assert FORKED_NOTE not in execd.log.read_text()


def test_a_forked_job_outlives_its_launcher_and_stops_cleanly(tmp_path, source):
    layout = start(tmp_path, source, "sleep", "fork")
    deadline = time.monotonic() + 30
    while "sleeping" not in (layout.log.read_text() if layout.log.exists() else ""):
        assert time.monotonic() < deadline, "the job never started"
        time.sleep(0.05)
    status = layout.read_status()
    supervisor, train = status["supervisor_pid"], status["pid"]
    # The driver has exited; the supervisor lives on, nobody's child but init's (or a subreaper's).
    assert is_alive(supervisor) and is_alive(train)
    assert Path(f"/proc/{supervisor}/comm").read_text().strip() == "dogbreed-job"
    assert Path(f"/proc/{train}/comm").read_text().strip() == "train.py"
    # Only the job's log and its lock are open in train.py: nothing else of the launcher's.
    fds = {os.readlink(f"/proc/{train}/fd/{fd}") for fd in os.listdir(f"/proc/{train}/fd")}
    assert fds <= {os.devnull, str(layout.log), str(layout.lock_file)}, fds
    # The driver (a tuning worker's stand-in) has exited: the forked supervisor holds the job
    # lock, so no second run can take the job (#15 item 1; closerange once dropped it).
    assert layout.is_locked()

    os.kill(supervisor, signal.SIGTERM)  # what `stop_training` does
    ended = wait_ended(layout)
    assert ended["state"] == "Stopped" and ended["exit_code"] == -signal.SIGTERM
    deadline = time.monotonic() + 10
    while is_alive(train) or is_alive(supervisor):
        assert time.monotonic() < deadline, "the stopped job left a process behind"
        time.sleep(0.05)
    assert not layout.is_locked()


def test_torchrun_jobs_and_foreign_scripts_are_exec_d(tmp_path, source):
    from dogbreed.backends.local_tuning.warm_start import WarmStart

    launcher = WarmStart(source, "job.py")
    plain = {"argv": [sys.executable, str(source / "job.py")], "processes": 1}
    assert not launcher.forks(plain)  # not warmed up yet
    launcher.warm = True  # what warm_up sets; its imports are not what this test is about
    assert launcher.forks(plain)
    assert not launcher.forks({**plain, "processes": 2})
    assert not launcher.forks({"argv": [sys.executable, "-m", "torch.distributed.run", str(source / "job.py")], "processes": 1})
    assert not launcher.forks({"argv": [sys.executable, str(tmp_path / "other.py")], "processes": 1})
    assert not launcher.forks({"argv": ["/usr/bin/python3.9", str(source / "job.py")], "processes": 1})


def test_fork_is_not_used_where_it_is_unsafe_or_switched_off(source, monkeypatch):
    import threading

    from dogbreed.backends.local_tuning.warm_start import WarmStart

    launcher = WarmStart(source, "job.py")
    launcher.warm = True
    plain = {"argv": [sys.executable, str(source / "job.py")], "processes": 1}
    assert launcher.forks(plain)
    monkeypatch.setenv("DOGBREED_FORK", "0")
    assert not launcher.forks(plain)
    monkeypatch.delenv("DOGBREED_FORK")
    release = threading.Event()
    other = threading.Thread(target=release.wait)  # a lock it held would stay held in a fork
    other.start()
    try:
        assert not launcher.forks(plain)
    finally:
        release.set()
        other.join()
    assert launcher.forks(plain)
    monkeypatch.setattr(sys, "platform", "darwin")  # macOS: exec, always
    assert not launcher.forks(plain)


def test_a_refused_fork_falls_back_to_exec(tmp_path, source, monkeypatch):
    from dogbreed.backends.local_tuning.warm_start import WarmStart

    launcher = WarmStart(source, "job.py")
    launcher.warm = True

    def refuse():
        raise BlockingIOError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(os, "fork", refuse)
    assert launcher.start_supervisor(JobLayout(tmp_path / "unused")) is False  # the caller execs it
    request = {
        "argv": [sys.executable, str(source / "job.py")],
        "cwd": str(tmp_path / "cwd"),
        "env": {"MODE": "exit3", "PYTHONUNBUFFERED": "1"},
        "processes": 1,
    }
    log = tmp_path / "train.log"
    with log.open("ab", buffering=0) as out:
        child = launcher.start(request, out)
        assert child.wait() == 3  # the job ran all the same, exec'd
    text = log.read_text()
    assert "[dogbreed] fork failed ([Errno 11] Resource temporarily unavailable); train.py exec'd instead" in text
    assert "warm=False" in text  # a fresh interpreter, not a fork of this one
