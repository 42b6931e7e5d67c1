"""Is a pid still running, and what command is it: shared by the job supervisor's and the
endpoint server's lifecycle checks (the ledger remembers pids, and pids get reused)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

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
