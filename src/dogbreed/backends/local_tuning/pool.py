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

from dogbreed.processes import command_line, is_alive

WORKER_MODULE = "dogbreed.backends.local_tuning.worker"


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
    # Until the child has exec'd, its command line is still ours, and `alive` would
    # call a worker that is just starting dead.
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        if _cmdline_names_worker(proc.pid, folder):
            return
        time.sleep(0.01)


def _cmdline_names_worker(pid: int, folder: Path) -> bool:
    """Whether pid's command line (now: a pid may be reused) is a worker of this folder.
    The folder is matched as a whole argument, also where `ps` split it at its spaces."""
    cmdline = command_line(pid)
    return cmdline is not None and WORKER_MODULE in cmdline and f" {folder} " in f" {' '.join(cmdline)} "


def _is_our_worker(pid: int, folder: Path) -> bool:
    return is_alive(pid) and _cmdline_names_worker(pid, folder)


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
