"""Is this pid our endpoint server, and stopping it.

The ledger remembers a pid, but pids get reused: before signalling one we check that it is
alive and that its command line is `python -m dogbreed.serving ... --name NAME ...`, so a
teardown can never kill an unrelated process that inherited the number.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from dogbreed.serving.main import MODULE

_HAS_PROC = Path("/proc/self/stat").exists()


def is_alive(pid: int | None) -> bool:
    """Running (not a zombie waiting to be reaped)."""
    if not pid or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive, and certainly not ours
    try:
        if os.waitpid(pid, os.WNOHANG) != (0, 0):
            return False  # our own child, just reaped
    except ChildProcessError:
        pass  # not our child
    try:
        # The state letter follows the parenthesised command name.
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except FileNotFoundError:
        return not _HAS_PROC  # gone since kill(0), or a system without /proc
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


def command_line(pid: int) -> list[str] | None:
    if _HAS_PROC:
        try:
            raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return None
        return [part for part in raw.decode(errors="replace").split("\0") if part]
    try:  # macOS and other systems without /proc
        out = subprocess.run(["ps", "-o", "command=", "-p", str(pid)], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.split() or None


def is_endpoint_server(pid: int | None, name: str) -> bool:
    """Alive, and running `-m dogbreed.serving --name <name>`."""
    if not is_alive(pid):
        return False
    argv = command_line(pid) or []
    if MODULE not in argv or "--name" not in argv:
        return False
    at = argv.index("--name")
    return at + 1 < len(argv) and argv[at + 1] == name


def wait_gone(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while is_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def stop_server(pid: int, name: str, grace_s: float = 70.0) -> bool:
    """SIGTERM (in-flight requests finish), then SIGKILL after grace_s. False if it was not ours."""
    if not is_endpoint_server(pid, name):
        return False
    try:
        os.kill(pid, signal.SIGTERM)
        if not wait_gone(pid, grace_s):
            os.kill(pid, signal.SIGKILL)
            wait_gone(pid, 10)
    except ProcessLookupError:
        pass
    return True
