"""Worker processes of a local tuning job: start them, find the live ones, stop them.

Each worker leaves a pid file in <tuning folder>/workers/, so a later `tune` (after
`--no-wait`, or after the CLI was killed) finds the workers still running and follows them
instead of starting a second set. A pid counts as our worker only while its command line
still names this tuning folder: pids are reused.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

WORKER_MODULE = "dogbreed.tuning.worker"


def _pid_dir(folder: Path) -> Path:
    path = folder / "workers"
    path.mkdir(parents=True, exist_ok=True)
    return path


def spawn(folder: Path, count: int, detached: bool) -> list[subprocess.Popen]:
    """Start `count` workers. Detached ones (--no-wait) get their own session and outlive
    the CLI; attached ones share its process group, so a terminal's Ctrl-C reaches them too."""
    procs = []
    for index in range(count):
        log = open(folder / f"worker-{index}.log", "ab")  # noqa: SIM115 - the child owns it
        proc = subprocess.Popen(
            [sys.executable, "-m", WORKER_MODULE, str(folder), str(index)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=detached,
            close_fds=True,
        )
        log.close()
        (_pid_dir(folder) / f"{index}.pid").write_text(str(proc.pid))
        _wait_for_exec(proc, folder)
        procs.append(proc)
    return procs


def _wait_for_exec(proc: subprocess.Popen, folder: Path, timeout: float = 10.0) -> None:
    # Until the child has exec'd, its /proc cmdline is still ours, and `alive` would
    # call a worker that is just starting dead.
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        if _cmdline_names_worker(proc.pid, folder) is not False:
            return
        time.sleep(0.01)


def _cmdline_names_worker(pid: int, folder: Path) -> bool | None:
    """Whether pid's command line is a worker of this folder; None without /proc (macOS)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except FileNotFoundError:
        return False if Path("/proc/self").exists() else None
    except OSError:
        return None
    return WORKER_MODULE.encode() in cmdline and str(folder).encode() in cmdline


def _is_our_worker(pid: int, folder: Path) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False
    try:
        # A zombie child of ours has finished.
        if os.waitpid(pid, os.WNOHANG) != (0, 0):
            return False
    except ChildProcessError:
        pass
    return _cmdline_names_worker(pid, folder) is not False  # without /proc, trust the pid


def alive(folder: Path) -> list[int]:
    """Pids of the job's workers that still run."""
    pids = []
    for pid_file in sorted(_pid_dir(folder).glob("*.pid")):
        try:
            pid = int(pid_file.read_text())
        except (OSError, ValueError):
            continue
        if _is_our_worker(pid, folder):
            pids.append(pid)
    return pids


def stop(folder: Path, timeout: float = 40.0) -> None:
    """SIGTERM every worker (each stops its running job first), then SIGKILL stragglers."""
    for pid in alive(folder):
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    while alive(folder) and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid in alive(folder):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
