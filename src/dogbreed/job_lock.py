"""One process runs a job at a time: the lock every local job kind takes (a training job's
folder, a tuning job's folder), so a second `train` or `tune` of the same job, however close
behind the first, is refused with the holder's pid instead of running it a second time.

The lock is the kernel's: an exclusive flock on a lock file in the job's folder. The kernel
drops it when the last process holding the descriptor exits, so a kill -9 never leaves a
stale lock behind, and a descriptor handed down to a child (a job's supervisor) keeps the
job locked for as long as that child runs. The file's content is the holder's pid, for the
refusal's message only: who holds the lock is the kernel's business, never the file's.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil

from dogbreed.errors import BusyError

RETRY_SECONDS = 0.1


def lock_now(fd: int) -> bool:
    """Take the kernel's exclusive lock on the open file `fd` without waiting: False when
    another process holds it. Every lock of ours that refuses rather than waits takes it so:
    jobs and deploys here, a dataset folder (data/stores.py), a scores file
    (serving/scores_file.py)."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


class JobLock:
    """The lock of one job: `path` is its lock file, `what` names the job in messages."""

    def __init__(self, path: Path, what: str) -> None:
        self.path = Path(path)
        self.what = what

    def acquire(self, attempts: int = 5) -> int:
        """The locked descriptor (the caller closes it, or hands it down), or BusyError naming
        the holder. A few tries: a status probe (held()) holds the lock for a moment."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            for attempt in range(attempts):
                if lock_now(fd):
                    break
                if attempt == attempts - 1:
                    raise BusyError(f"{self.what} is already running ({self.holder_text()})")
                time.sleep(RETRY_SECONDS)
        except BaseException:
            os.close(fd)
            raise
        adopt(fd)
        return fd

    @contextmanager
    def hold(self, attempts: int = 5) -> Iterator[int]:
        fd = self.acquire(attempts)
        try:
            yield fd
        finally:
            os.close(fd)  # drops the lock, unless a child still holds a copy

    def holder(self) -> int | None:
        """The pid the holder wrote, if any (best effort: only for messages): the first one
        still running when several hold it (a job's supervisor, then its train.py, which
        runs on if the supervisor is killed)."""
        try:
            pids = [int(word) for word in self.path.read_text().split()]
        except (OSError, ValueError):
            return None
        return next((pid for pid in pids if _running(pid)), pids[0] if pids else None)

    def name_holders(self, *pids: int) -> None:
        """Write the pids that hold the lock now, for messages (the lock is the kernel's)."""
        try:
            self.path.write_text(" ".join(str(pid) for pid in pids) + "\n")
        except OSError:
            pass  # only messages depend on it

    def holder_text(self) -> str:
        pid = self.holder()
        return f"pid {pid}" if pid else "held by another process"

    def held(self) -> bool:
        """Whether some process holds the lock right now (runs, or is starting, the job)."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return True
        finally:
            os.close(fd)  # closing drops the probe's own lock
        return False


def _running(pid: int) -> bool:
    """Alive and not a zombie (a killed supervisor nobody has reaped yet is no holder)."""
    try:
        return psutil.Process(pid).status() not in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:
        return True


def adopt(fd: int) -> None:
    """Write this process's pid into a lock it holds: called by whoever takes the lock, and
    by a child that inherited the descriptor and now holds the job (a job's supervisor), so
    that a refusal names the process to wait for or stop."""
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
