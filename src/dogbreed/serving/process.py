"""Is this pid our endpoint server, and stopping it.

The ledger remembers a pid, but pids get reused: before signalling one we check that it is
alive and that its command line is `python -m dogbreed.serving ... --name NAME ...`, so a
teardown can never kill an unrelated process that inherited the number.
"""

from __future__ import annotations

import os
import signal
import time

from dogbreed.processes import command_line, is_alive
from dogbreed.serving.main import MODULE


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
        # A stopped server (SIGSTOP, Ctrl-Z, a debugger) keeps the SIGTERM pending until it
        # runs again: wake it, so it drains and exits now instead of being killed after grace_s.
        os.kill(pid, signal.SIGCONT)
        if not wait_gone(pid, grace_s):
            os.kill(pid, signal.SIGKILL)
            wait_gone(pid, 10)
    except ProcessLookupError:
        pass
    return True
