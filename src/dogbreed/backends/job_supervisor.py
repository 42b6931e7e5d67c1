"""Runs one local training job detached from the CLI, the way SageMaker's agent would.

    python -m dogbreed.backends.job_supervisor <job dir> [<lock fd>]

It reads request.json (argv, env), runs train.py with its output appended to train.log,
and keeps status.json current (InProgress -> Completed | Failed | Stopped). On success it
packs model/ into model.tar.gz exactly as SageMaker does (files at the archive's root).
Being its own session, it survives the CLI (`--no-wait`), and a later `dogbreed` process
learns the outcome from status.json. SIGTERM/SIGINT stop the job cleanly: the signal is
passed on to train.py, whose per-epoch checkpoints make the next run resume.

How train.py is started is the launcher's business: a fresh interpreter here (`Exec`), or a
fork of a process that already imported torch when a tuning worker runs many short jobs
(warm_start.py). Everything else (log, status, packing, stopping) is the same for both.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tarfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from dogbreed.atomic_files import replacing
from dogbreed.backends.job_layout import JobLayout
from dogbreed.errors import BusyError
from dogbreed.job_lock import adopt


def _now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def pack_model(model_dir: Path, target: Path) -> None:
    """model.tar.gz with model.pth, classes.json, code/... at its root (SageMaker's layout)."""
    # float32 weights barely compress: level 1 is ~25x faster than the default 9 for a
    # ~25% larger file, and every tuning trial pays this (benchmarks/bench_tuning.py).
    with replacing(target) as tmp, tarfile.open(tmp, "w:gz", compresslevel=1) as archive:
        for path in sorted(model_dir.rglob("*")):
            if "__pycache__" in path.parts:
                continue
            archive.add(path, arcname=str(path.relative_to(model_dir)), recursive=False)


def _tail(log: Path, lines: int) -> list[str] | None:
    """The log's last lines, without the supervisor's own `[dogbreed] ...` lines."""
    try:
        text = log.read_text(errors="replace")
    except FileNotFoundError:
        return None
    return [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("[dogbreed] ")][-lines:]


def _error_line(tail: list[str]) -> str | None:
    return next((ln for ln in reversed(tail) if "Error" in ln or "error:" in ln or "Exception" in ln), None)


def last_error(log: Path, lines: int = 40) -> str:
    """The most telling line of a log: its last exception, else its last line."""
    tail = _tail(log, lines)
    if tail is None:
        return "no log"
    return _error_line(tail) or (tail[-1] if tail else "no output")


def job_failure(log: Path, code: int) -> str:
    """Why train.py failed, in one line: its last error line, else how it ended."""
    found = _error_line(_tail(log, 40) or [])
    if found:
        return found
    if code < 0:
        try:
            return f"train.py exited with code {code} (killed by {signal.Signals(-code).name})"
        except ValueError:
            pass
    return f"train.py exited with code {code}"


class Child(Protocol):
    """A started train.py: subprocess.Popen's shape (returncode < 0 means killed by a signal)."""

    pid: int

    def wait(self) -> int: ...


class Launcher(Protocol):
    def describe(self, request: dict[str, Any]) -> str | None:
        """A log line saying how train.py is started, when it is not a plain exec."""

    def start(self, request: dict[str, Any], log: BinaryIO) -> Child:
        """Start request["argv"] in request["cwd"] with request["env"], output to log."""


class Exec:
    """train.py in a fresh interpreter, in its own session so a stop reaches its whole group.

    `keep_fds`: the job lock's descriptor, inherited by train.py as a forked one inherits it,
    so the job stays locked for as long as train.py runs: a supervisor killed with -9 leaves
    train.py running on, and a `train` of the same job must not start a second one writing
    the same checkpoints."""

    def __init__(self, keep_fds: tuple[int, ...] = ()) -> None:
        self.keep_fds = keep_fds

    def describe(self, request: dict[str, Any]) -> str | None:
        return None

    def start(self, request: dict[str, Any], log: BinaryIO) -> Child:
        return subprocess.Popen(
            request["argv"],
            cwd=request["cwd"],
            env={**os.environ, **request["env"]},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            pass_fds=self.keep_fds,
        )


def supervise(layout: JobLayout, launcher: Launcher | None = None) -> int:
    launcher = launcher or Exec()
    request = json.loads(layout.request_file.read_text())
    with layout.log.open("ab", buffering=0) as log:
        log.write(f"[dogbreed] {_now()} starting: {' '.join(request['argv'])}\n".encode())
        how = launcher.describe(request)
        if how:
            log.write(f"[dogbreed] {_now()} {how}\n".encode())
        stopping: dict[str, Any] = {"signal": None, "child": None}

        def stop(signum: int, _frame: object) -> None:
            stopping["signal"] = signum
            if stopping["child"] is None:
                return  # train.py is not started yet: it is stopped as soon as it is
            try:
                os.killpg(stopping["child"].pid, signal.SIGTERM)
                os.killpg(stopping["child"].pid, signal.SIGCONT)  # a stopped train.py acts on it only once it runs
            except ProcessLookupError:
                pass

        # Set before this process names itself in status.json, which is where a stop learns
        # its pid: a SIGTERM in between used to end it on the spot, with train.py running on.
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        child = stopping["child"] = launcher.start(request, log)
        if stopping["signal"] is not None:
            stop(stopping["signal"], None)
        layout.write_status(state="InProgress", supervisor_pid=os.getpid(), pid=child.pid, started_at=_now())
        layout.job_lock().name_holders(os.getpid(), child.pid)
        code = child.wait()
        ended = _now()
        log.write(f"[dogbreed] {ended} train.py exited with code {code}\n".encode())

    if stopping["signal"] is not None:
        layout.write_status(state="Stopped", exit_code=code, ended_at=ended, failure="stopped by request")
        return 0
    if code != 0:
        layout.write_status(state="Failed", exit_code=code, ended_at=ended, failure=job_failure(layout.log, code))
        return 0
    try:
        pack_model(layout.model_dir, layout.model_tar)
    except OSError as exc:
        layout.write_status(state="Failed", exit_code=code, ended_at=ended, failure=f"packing model.tar.gz: {exc}")
        return 0
    layout.write_status(state="Completed", exit_code=code, ended_at=ended)
    return 0


def main() -> None:
    """The lock fd is the job lock (job.lock) its starter took and passed down: held open
    until this process exits, with this process's pid in it for anyone refused. Run by
    hand without one, it takes the lock itself."""
    if len(sys.argv) not in (2, 3):
        sys.exit("usage: python -m dogbreed.backends.job_supervisor JOB_DIR [LOCK_FD]")
    layout = JobLayout(Path(sys.argv[1]))
    if len(sys.argv) == 2:
        try:
            lock = layout.lock()  # kept open until exit
        except BusyError as exc:
            sys.exit(str(exc))
    else:
        lock = int(sys.argv[2])
        adopt(lock)
    sys.exit(supervise(layout, Exec(keep_fds=(lock,))))


if __name__ == "__main__":
    main()
