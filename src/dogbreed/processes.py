"""Is a pid still running, and what command is it: shared by the job supervisor's and the
endpoint server's lifecycle checks (the ledger remembers pids, and pids get reused).

Through psutil (installed with the SageMaker SDK, and a dependency of ours), so the same code
runs on Linux and macOS: nothing here reads /proc, which macOS does not have.
"""

from __future__ import annotations

import os

import psutil

_ENDED = (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)


def is_alive(pid: int | None) -> bool:
    """Running (not a zombie waiting to be reaped)."""
    if not pid or pid <= 0:
        return False
    try:
        if os.waitpid(pid, os.WNOHANG) != (0, 0):
            return False  # our own child, just reaped
    except ChildProcessError:
        pass  # not our child
    try:
        return psutil.Process(pid).status() not in _ENDED
    except psutil.NoSuchProcess:  # gone (a ZombieProcess is one too)
        return False
    except psutil.AccessDenied:
        return True  # someone else's process: alive, and certainly not ours


def command_line(pid: int) -> list[str] | None:
    """The process's argv, or None when it is gone or not ours to read."""
    try:
        return psutil.Process(pid).cmdline() or None
    except psutil.Error:  # NoSuchProcess, ZombieProcess, AccessDenied
        return None
