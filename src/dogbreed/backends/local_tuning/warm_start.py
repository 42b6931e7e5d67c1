"""Jobs without the interpreter's start-up: fork train.py from a process that imported torch once.

A tuning trial on cached features does under half a second of work, but a fresh
`python train.py` first spends 3-4 s importing torch and torchvision (the CUDA build,
benchmarks/bench_tuning.py). A tuning worker therefore calls `WarmStart.warm_up()` once,
which runs train.py's module top level (its imports, not its `cli()`), and then starts
every trial's job by forking:

    worker (warm) --fork--> x --fork--> supervisor --fork--> train.py as __main__ (runpy)
                  (x exits at once, so the supervisor is nobody's child: detached like the
                   `python -m dogbreed.backends.job_supervisor` that `dogbreed train` starts)

The forked train.py gets what exec would give it: its own session and pid, the job's argv,
cwd and environment, stdin /dev/null, stdout and stderr on the job's log, the source
directory first on sys.path, torch's thread count from OMP_NUM_THREADS (libgomp read the
variable once, at the warm import), and Python's exit codes (SystemExit, 1 on an uncaught
exception with its traceback, death by SIGINT on KeyboardInterrupt). The job folder, log,
status, metrics, checkpoints and model.tar.gz are the supervisor's and do not change.

Where forking is not the same as exec it is not used, and the job is exec'd as usual:
torchrun jobs (train.processes > 1), systems other than Linux (macOS: its system libraries
are not fork-safe), a warm process in which CUDA was initialised (CUDA does not survive
fork; the warm-up never touches it) or that runs other Python threads (a lock one of them
holds would stay held in the child forever), and DOGBREED_FORK=0. A fork that fails
(EAGAIN, ENOMEM) falls back to exec too.
The warm process is the only host process that imports the training package; it never
calls into it, only its forks do.
"""

from __future__ import annotations

import atexit
import gc
import io
import os
import runpy
import signal
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any, BinaryIO

from dogbreed.backends.job_layout import JobLayout
from dogbreed.backends.job_supervisor import Child, Exec, supervise
from dogbreed.errors import DogbreedError
from dogbreed.job_lock import adopt
from dogbreed.jobspec import ENTRY_POINT, SOURCE_DIR

# Short names for `ps`/`top` (Linux comm, 15 bytes): a forked process keeps the worker's
# command line, so its name is what tells the three apart.
SUPERVISOR_NAME = "dogbreed-job"
TRAIN_NAME = "train.py"
# The job log's second line when train.py was forked rather than exec'd.
FORKED_NOTE = "train.py forked from a warm worker that imported torch once (tune.prewarm)"


class ForkedChild:
    """A forked train.py, waited on like a Popen."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def wait(self) -> int:
        if self.returncode is None:
            # Interrupted by the supervisor's stop handler, waitpid is retried (PEP 475).
            _, status = os.waitpid(self.pid, 0)
            self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode


class WarmStart:
    """Launcher of jobs by fork from this (warmed) process. See the module docstring."""

    def __init__(self, source_dir: Path = SOURCE_DIR, entry_point: str = ENTRY_POINT) -> None:
        self.script = (source_dir / entry_point).resolve()
        self.warm = False
        self.keep_fds: tuple[int, ...] = ()  # set in its supervisor: the job lock, for an exec'd train.py

    # -- in the warm process --------------------------------------------------------

    def warm_up(self) -> float:
        """Import what train.py imports, once; seconds it took. Safe to call again."""
        if self.warm:
            return 0.0
        started = time.monotonic()
        folder = str(self.script.parent)
        sys.path.insert(0, folder)
        try:
            # Its top level: imports and definitions. `cli()` runs only under __main__.
            runpy.run_path(str(self.script), run_name="_dogbreed_warm_train")
        finally:
            sys.path.remove(folder)
        self.warm = True
        return time.monotonic() - started

    def usable(self) -> bool:
        """Whether forking gives a train.py the same as exec would, here and now."""
        if not (self.warm and sys.platform == "linux" and hasattr(os, "fork")):
            return False
        if os.environ.get("DOGBREED_FORK", "1") == "0" or threading.active_count() > 1:
            return False
        torch = sys.modules.get("torch")
        return not (torch is not None and torch.cuda.is_initialized())

    def forks(self, request: dict[str, Any]) -> bool:
        """This job can be forked: plain `python train.py ...` (not torchrun) of our script."""
        argv = request["argv"]
        return (
            self.usable()
            and request.get("processes", 1) == 1
            and len(argv) >= 2
            and argv[0] == sys.executable
            and Path(argv[1]).resolve() == self.script
        )

    def start_supervisor(self, layout: JobLayout, lock_fd: int | None = None) -> bool:
        """Fork the job's supervisor, detached: a double fork, so that it is nobody's child
        and no zombie of ours; it writes its pid to status.json as the exec'd one does.
        False when the system refuses to fork: the caller execs the supervisor instead.
        lock_fd: the job lock (JobLayout.lock), the one descriptor the supervisor keeps."""
        try:
            middle = os.fork()
        except OSError:
            return False
        if middle == 0:
            code = 1
            try:
                os.setsid()
                if os.fork() == 0:
                    _run_supervisor(layout, self, lock_fd)  # never returns
                code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(middle, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise DogbreedError(f"could not start the supervisor of job {layout.root.name} (fork failed)")
        return True

    # -- in the supervisor: the Launcher protocol of job_supervisor -----------------

    def describe(self, request: dict[str, Any]) -> str | None:
        return FORKED_NOTE if self.forks(request) else None

    def start(self, request: dict[str, Any], log: BinaryIO) -> Child:
        if not self.forks(request):
            return Exec(self.keep_fds).start(request, log)
        try:
            pid = os.fork()
        except OSError as exc:  # no fork to be had now: the job runs all the same, exec'd
            log.write(f"[dogbreed] fork failed ({exc}); train.py exec'd instead\n".encode())
            log.flush()
            return Exec(self.keep_fds).start(request, log)
        if pid == 0:
            code = 1
            try:
                # First: the supervisor's own SIGTERM handler (stop the child) must not run here.
                _reset_signals()
                gc.freeze()
                os.setsid()  # its own group: the supervisor stops it with killpg
                _redirect_stdio(log.fileno())
                _name_process(TRAIN_NAME)
                code = run_script(request["argv"], request["cwd"], {**os.environ, **request["env"]})
            finally:
                os._exit(code)
        return ForkedChild(pid)


def _run_supervisor(layout: JobLayout, launcher: WarmStart, lock_fd: int | None = None) -> None:
    """The supervisor's life in a fork of the worker; ends the process."""
    code = 1
    try:
        _forget_parent(keep=lock_fd)
        if lock_fd is not None:
            adopt(lock_fd)  # a refused `train` names this supervisor, not the worker
            launcher.keep_fds = (lock_fd,)  # an exec'd train.py holds the job too, as a forked one does
        _redirect_stdio(None)
        _name_process(SUPERVISOR_NAME)
        code = supervise(layout, launcher)
    except BaseException:  # noqa: BLE001 - the process ends here; say why in the job's log
        try:
            with layout.log.open("a") as log:
                log.write(f"[dogbreed] the job's supervisor failed:\n{traceback.format_exc()}")
        except OSError:
            pass
    finally:
        os._exit(code)


def _forget_parent(keep: int | None = None) -> None:
    """Drop what the worker had that a detached supervisor must not keep or act on; `keep`
    is the job lock's descriptor, held until the supervisor exits."""
    # Objects inherited from the worker are never collected here: a collected file object
    # would close an fd number that this process has since reused (see closerange below).
    gc.freeze()
    _reset_signals()
    # As Popen(close_fds=True, pass_fds=(keep,)): no inherited files, pipes or other locks.
    top = os.sysconf("SC_OPEN_MAX") if hasattr(os, "sysconf") else 65536
    if keep is None:
        os.closerange(3, top)
    else:
        os.closerange(3, keep)
        os.closerange(keep + 1, top)


def _reset_signals() -> None:
    """Python's own dispositions, as a fresh interpreter has them."""
    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD):
        signal.signal(signum, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)


def _redirect_stdio(output_fd: int | None) -> None:
    """stdin from /dev/null; stdout and stderr to output_fd (None: /dev/null), unbuffered
    text as PYTHONUNBUFFERED=1 gives the exec'd train.py."""
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(output_fd if output_fd is not None else null, 1)
    os.dup2(output_fd if output_fd is not None else null, 2)
    if null > 2:
        os.close(null)
    sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False))
    sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), line_buffering=True, write_through=True)
    sys.stderr = io.TextIOWrapper(
        io.FileIO(2, "w", closefd=False), errors="backslashreplace", line_buffering=True, write_through=True
    )
    sys.__stdin__, sys.__stdout__, sys.__stderr__ = sys.stdin, sys.stdout, sys.stderr


def _name_process(name: str) -> None:
    try:
        Path("/proc/self/comm").write_text(name[:15])
    except OSError:
        pass


def run_script(argv: list[str], cwd: str, env: dict[str, str]) -> int:
    """Run argv[1] as __main__ with argv[1:] as sys.argv, in this (forked) process, as
    `python argv[1] ...` would; return its exit code. Prints tracebacks as Python does."""
    script = argv[1]
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    _threads_from_environment()
    sys.argv = list(argv[1:])
    sys.path.insert(0, str(Path(script).resolve().parent))
    interrupted = False
    try:
        runpy.run_path(script, run_name="__main__")
        code = 0
    except SystemExit as exc:
        code = _exit_code(exc)
    except KeyboardInterrupt as exc:
        _print_traceback(exc, script)
        interrupted, code = True, 130
    except BaseException as exc:  # noqa: BLE001 - what an uncaught exception does to `python x.py`
        _print_traceback(exc, script)
        code = 1
    try:
        atexit._run_exitfuncs()  # what interpreter shutdown runs, after the traceback
    finally:
        _flush()
    if interrupted:
        # As Python does after an uncaught KeyboardInterrupt: die by SIGINT.
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    return code


def _print_traceback(exc: BaseException, script: str) -> None:
    """The traceback `python script` would print: from the script's frame on, not runpy's."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename != script:
        tb = tb.tb_next
    traceback.print_exception(type(exc), exc, tb or exc.__traceback__)


def _threads_from_environment() -> None:
    """libgomp read OMP_NUM_THREADS when the warm process imported torch; apply the job's."""
    torch = sys.modules.get("torch")
    value = os.environ.get("OMP_NUM_THREADS", "")
    if torch is not None and value.isdigit() and int(value) > 0:
        torch.set_num_threads(int(value))


def _exit_code(exc: SystemExit) -> int:
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code & 0xFF
    print(exc.code, file=sys.stderr)
    return 1


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
