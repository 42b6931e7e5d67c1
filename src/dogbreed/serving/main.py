"""The local endpoint process: `python -m dogbreed.serving --model-dir DIR --name NAME ...`.

`dogbreed deploy` starts it in a session of its own with its output in a log file; it
outlives the CLI. In order: bind the port (a taken port fails at once, in one line), write
the state file (pid, port, url: how deploy learns a port picked by the OS), serve /ping as
503 while model_fn loads the model, then 200. It stops on SIGTERM/SIGINT or when its TTL
(--expires-at) passes: no new connections, in-flight requests finish, then exit. If the
ledger still names this process as the endpoint, it marks the endpoint "gone" there.
"""

from __future__ import annotations

import argparse
import errno
import json
import logging
import os
import signal
import sys
import threading
from datetime import datetime, timezone
from pathlib import Path

from dogbreed.atomic_files import write_text
from dogbreed.serving.http_server import EndpointServer
from dogbreed.serving.limits import INVOCATION_TIMEOUT_S
from dogbreed.serving.model_handler import ModelHandler

log = logging.getLogger("dogbreed.serving")
MODULE = "dogbreed.serving"  # what process.py looks for in a pid's command line


def server_argv(
    python: str,
    *,
    name: str,
    model_dir: Path,
    host: str,
    port: int,
    workers: int,
    expires_at: datetime | None,
    state_file: Path,
    ledger: Path | None,
    log_file: Path | None = None,
) -> list[str]:
    """The command deploy runs (and --dry-run prints)."""
    argv = [python, "-m", MODULE, "--name", name, "--model-dir", str(model_dir), "--host", host]
    argv += ["--port", str(port), "--workers", str(workers), "--state-file", str(state_file)]
    if expires_at is not None:
        argv += ["--expires-at", expires_at.astimezone(timezone.utc).isoformat()]
    if ledger is not None:
        argv += ["--ledger", str(ledger)]
    if log_file is not None:
        argv += ["--log-file", str(log_file)]
    return argv


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}", description=__doc__.splitlines()[0])
    parser.add_argument("--name", required=True, help="Endpoint name (checked on /endpoints/{name}/invocations).")
    parser.add_argument("--model-dir", required=True, type=Path, help="model.pth, classes.json, code/inference.py...")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080, help="0 picks a free port.")
    parser.add_argument("--workers", type=int, default=4, help="Invocations run at once.")
    parser.add_argument("--timeout", type=float, default=INVOCATION_TIMEOUT_S, help="Seconds per invocation.")
    parser.add_argument(
        "--body-timeout", type=float, default=None, help="Seconds a request's body has to arrive (default: --timeout)."
    )
    parser.add_argument("--expires-at", type=datetime.fromisoformat, default=None, help="Exit at this time (ISO 8601).")
    parser.add_argument("--state-file", type=Path, default=None, help="Where to write pid, port and url once bound.")
    parser.add_argument("--ledger", type=Path, default=None, help="Ledger to mark the endpoint gone in on exit.")
    parser.add_argument("--log-file", default=None, help="Where this process's output goes (named in errors).")
    return parser.parse_args(argv)


def _write_state(path: Path, state: dict) -> None:
    write_text(path, json.dumps(state, indent=2))


def _mark_gone(ledger_path: Path, name: str, reason: str) -> None:
    """Mark the endpoint gone, unless the ledger has moved on (a redeploy replaced this process)."""
    from dogbreed.ledger import Ledger

    ledger = Ledger(ledger_path)
    record = ledger.get("endpoint", name, "local")
    if record is not None and record.live and record.meta.get("pid") == os.getpid():
        ledger.update("endpoint", name, "local", state="gone", meta={"stopped": reason})


def _seconds_left(expires_at: datetime | None) -> float | None:
    if expires_at is None:
        return None
    if expires_at.tzinfo is None:
        expires_at = expires_at.replace(tzinfo=timezone.utc)
    return (expires_at - datetime.now(timezone.utc)).total_seconds()


def _wait_for_stop(stop: threading.Event, expires_at: datetime | None) -> str:
    """Block until a signal or the TTL, re-reading the wall clock (a laptop that slept through
    the expiry notices it on waking). Short waits: a timed lock wait in the main thread is not
    woken by a signal on every platform, so the handler's stop.set() is seen within 0.25 s."""
    while True:
        left = _seconds_left(expires_at)
        if left is not None and left <= 0:
            return "ttl expired"
        if stop.wait(timeout=0.25 if left is None else min(0.25, left)):
            return "stopped by signal"


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        server = EndpointServer(
            (args.host, args.port),
            args.name,
            workers=args.workers,
            timeout_s=args.timeout,
            log_file=args.log_file,
            body_timeout_s=args.body_timeout,
        )
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            log.error("port %d on %s is already in use; choose another with --port (0 = any free port)", args.port, args.host)
        else:
            log.error("cannot listen on %s:%d: %s", args.host, args.port, exc)
        return 3
    url = f"http://{args.host}:{server.port}"
    if args.state_file:
        state = {"pid": os.getpid(), "name": args.name, "host": args.host, "port": server.port, "url": url}
        _write_state(args.state_file, state)

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    threading.Thread(target=server.serve_forever, name="accept", daemon=True).start()
    log.info("endpoint %s listening on %s (pid %d); loading %s", args.name, url, os.getpid(), args.model_dir)

    # Each worker runs its own forward pass; give each a share of the cores rather than letting
    # every one start a pool of all of them (oversubscribed OpenMP threads spin against each
    # other). Set before model_fn imports torch; a value the user exported wins.
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // args.workers)))
    code = 0
    try:
        server.model = ModelHandler.load(args.model_dir)
        log.info("model loaded; endpoint %s is in service", args.name)
        reason = _wait_for_stop(stop, args.expires_at)
    except Exception:  # noqa: BLE001 - a model that fails to load ends the process, with the reason logged
        log.exception("model_fn failed for %s", args.model_dir)
        reason, code = "model failed to load", 1
    log.info("stopping (%s): finishing in-flight requests", reason)
    if not server.drain(grace_s=args.timeout + 5):
        log.warning("some requests were still running after %.0f s and were cut off", args.timeout + 5)
    if args.ledger:
        try:
            _mark_gone(args.ledger, args.name, reason)
        except Exception:  # noqa: BLE001 - the ledger is a courtesy here; status checks reality anyway
            log.exception("could not mark endpoint %s gone in %s", args.name, args.ledger)
    log.info("endpoint %s stopped", args.name)
    return code
