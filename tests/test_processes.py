"""The process helpers work where /proc does not exist (macOS): they go through psutil, and
dogbreed's own code never opens anything under /proc."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Run in a fresh interpreter: an audit hook refuses every open of a /proc path made by
# dogbreed's code (psutil's own reads are its business: on macOS it has other means), so a
# helper that still read /proc would fail here as it would on a Mac.
PROBE = r"""
import json, os, subprocess, sys, time

refused = []

def no_proc(event, args):
    if event != "open" or not str(args[0]).startswith("/proc"):
        return
    frame, ours = sys._getframe(1), False
    while frame is not None:
        name = frame.f_code.co_filename
        if "psutil" in name:
            return
        ours = ours or os.sep + "dogbreed" + os.sep in name
        frame = frame.f_back
    if ours:
        refused.append(str(args[0]))
        raise FileNotFoundError(2, "no /proc on this system", str(args[0]))

sys.addaudithook(no_proc)

from dogbreed.processes import command_line, is_alive
from dogbreed.serving.process import is_endpoint_server

sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "-m", "dogbreed.serving", "--name", "probe"])
quick = subprocess.Popen([sys.executable, "-c", "pass"])
while quick.poll() is None:
    time.sleep(0.01)
zombie = subprocess.Popen([sys.executable, "-c", "pass"])
time.sleep(0.5)  # it has exited but nobody has reaped it: a zombie until is_alive reaps it
answers = {
    "self": is_alive(os.getpid()),
    "sleeper": is_alive(sleeper.pid),
    "sleeper_argv": command_line(sleeper.pid),
    "endpoint": is_endpoint_server(sleeper.pid, "probe"),
    "other_name": is_endpoint_server(sleeper.pid, "other"),
    "reaped": is_alive(quick.pid),
    "zombie": is_alive(zombie.pid),
    "nobody": is_alive(2**22 + 12345),
    "nobody_argv": command_line(2**22 + 12345),
    "init": is_alive(1),
    "refused": refused,
}
sleeper.kill()
sleeper.wait()
print(json.dumps(answers))
"""


def test_process_helpers_never_read_proc():
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120, cwd=REPO, check=False)
    assert done.returncode == 0, done.stderr
    answers = json.loads(done.stdout)
    assert answers.pop("refused") == []
    argv = answers.pop("sleeper_argv")
    assert argv[0] == sys.executable and argv[-3:] == ["dogbreed.serving", "--name", "probe"]
    assert answers == {
        "self": True,
        "sleeper": True,
        "endpoint": True,
        "other_name": False,
        "reaped": False,
        "zombie": False,
        "nobody": False,
        "nobody_argv": None,
        "init": True,
    }


def test_the_product_has_no_proc_paths_left():
    """Besides the probe above: no host module names /proc for process checks (the job's
    recorder in source_dir runs in Linux containers and prefers psutil). Two best-effort reads
    are allowed, each doing without it elsewhere: the warm start renames itself there, and
    an ingest refused by a dataset's lock names the holder's pid from /proc/locks."""
    allowed = {"warm_start.py", "stores.py"}
    offenders = [
        str(path.relative_to(REPO))
        for path in (REPO / "src" / "dogbreed").rglob("*.py")
        if "source_dir" not in path.parts and '"/proc' in path.read_text() and path.name not in allowed
    ]
    assert offenders == []
