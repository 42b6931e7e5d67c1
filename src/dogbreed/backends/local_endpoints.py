"""Serving on the local backend: each endpoint is a `python -m dogbreed.serving` process.

deploy starts it in a session of its own (it outlives the CLI), with its output in
<workspace>/endpoints/<name>/<release>/server.log, and hands what it started (pid, port, url,
log, release) to the deploy workflow, which records it: as soon as the process exists
(`on_created`, state creating), and again once it answers /ping. A release folder per
deploy holds the extracted model, the log and the state file, so a redeploy never pulls
files from under the server it replaces.

Redeploying a name replaces it in place. On another port (or port 0) the new server starts
first and the old one stops only once the new one answers /ping: no gap, and a broken new
model leaves the old one serving. On the same fixed port the two cannot overlap, so the old
one stops first (a few seconds' gap, said on stderr). While the new server loads, the
ledger names it and the old one (`replacing`): requests still go to the old one, and a
teardown stops both, even if the deploying CLI was killed.

This class reads the ledger (pids, ports, urls) but never writes it: the workflows record
what it returns, and the server marks itself gone when it stops (serving/main.py).
describe_endpoint checks the process (alive, and really our server by its command line)
and /ping.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from dogbreed.backends.base import DeployRequest, EndpointInfo
from dogbreed.errors import DogbreedError
from dogbreed.ledger import Resource
from dogbreed.serving.client import EndpointClient, HttpTransport, Transport
from dogbreed.serving.errors import EndpointUnavailableError
from dogbreed.serving.handler_code import check_handler_code
from dogbreed.serving.main import server_argv
from dogbreed.serving.model_archive import local_model_path, prepare_model_dir
from dogbreed.serving.process import is_alive, is_endpoint_server, stop_server

BACKEND = "local"
READY_TIMEOUT_S = 300.0  # model_fn on a busy laptop: imports torch, reads the weights
LOG_TAIL_LINES = 8


def _tail(log: Path, lines: int = LOG_TAIL_LINES) -> list[str]:
    try:
        return [line for line in log.read_text(errors="replace").splitlines() if line.strip()][-lines:]
    except OSError:
        return []


def _port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds
        try:
            probe.bind((host, port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


class LocalEndpoints:
    """The serving half of LocalBackend (which provides config, workspace and reporter)."""

    transport: Transport | None = None  # HTTP to the servers; set another to observe or fake it

    # --- small helpers

    def _http(self) -> Transport:
        if self.transport is None:
            self.transport = HttpTransport()
        return self.transport

    def _record(self, name: str) -> Resource | None:
        return self.workspace.ledger.get("endpoint", name, BACKEND)

    def _endpoint_root(self, name: str) -> Path:
        return self.workspace.root / "endpoints" / name

    def _info(self, record: Resource, state: str) -> EndpointInfo:
        meta = record.meta
        return EndpointInfo(
            name=record.name,
            backend=BACKEND,
            state=state,
            model_uri=meta.get("model_uri"),
            url=record.uri,
            expires_at=record.expires_at,
            created_at=record.created_at,
            instance_type="local",
            est_cost_per_hour=0.0,
            extra={key: meta.get(key) for key in ("pid", "port", "log", "model_dir")},
        )

    def _serving(self, name: str) -> Resource | None:
        """The ledger record of a server of ours that is still running under this name."""
        record = self._record(name)
        if record is None or record.state == "deleted":
            return None
        return record if is_endpoint_server(record.meta.get("pid"), name) else None

    def _argv(self, request: DeployRequest, model_dir: Path, release: Path) -> list[str]:
        deploy = request.config.deploy
        return server_argv(
            sys.executable,
            name=request.endpoint_name,
            model_dir=model_dir,
            host=deploy.host,
            port=deploy.port,
            workers=deploy.workers,
            expires_at=request.expires_at,
            state_file=release / "server.json",
            ledger=self.workspace.ledger.path.resolve(),
            log_file=release / "server.log",
        )

    # --- the Backend protocol

    def plan_deploy(self, request: DeployRequest) -> dict[str, Any]:
        deploy = request.config.deploy
        source = local_model_path(request.model_uri)
        release = self._endpoint_root(request.endpoint_name).resolve() / "<release>"
        model_dir = source if source.is_dir() else release / "model"
        running = self._serving(request.endpoint_name)
        return {
            "backend": BACKEND,
            "endpoint": request.endpoint_name,
            "model_uri": request.model_uri,
            "model_dir": str(model_dir),
            "extract": None if source.is_dir() else {"from": str(source), "to": str(model_dir)},
            "host": deploy.host,
            "port": deploy.port,
            "url": f"http://{deploy.host}:{deploy.port}" if deploy.port else None,
            "workers": deploy.workers,
            "ttl": deploy.ttl,
            "expires_at": request.expires_at.isoformat(),
            "command": self._argv(request, model_dir, release),
            "log": str(release / "server.log"),
            "replaces": None if running is None else {"pid": running.meta.get("pid"), "url": running.uri},
            "est_cost_per_hour": 0.0,
        }

    def _started(
        self,
        request: DeployRequest,
        process: subprocess.Popen,
        release: Path,
        model_dir: Path,
        url: str | None,
        port: int,
        state: str,
        old: Resource | None,
    ) -> EndpointInfo:
        """What deploy started, for the ledger: enough to find, ask and stop it later."""
        deploy = request.config.deploy
        replacing = None
        if old is not None:
            replacing = {"pid": old.meta.get("pid"), "url": old.uri, "release": old.meta.get("release")}
        return EndpointInfo(
            name=request.endpoint_name,
            backend=BACKEND,
            state=state,
            model_uri=request.model_uri,
            url=url,
            expires_at=request.expires_at,
            instance_type="local",
            est_cost_per_hour=0.0,
            extra={"pid": process.pid, "port": port, "log": str(release / "server.log"), "model_dir": str(model_dir)},
            record={"host": deploy.host, "release": str(release), "workers": deploy.workers, "replacing": replacing},
        )

    def deploy(
        self, request: DeployRequest, wait: bool = True, on_created: Callable[[EndpointInfo], None] | None = None
    ) -> EndpointInfo:
        name, deploy = request.endpoint_name, request.config.deploy
        created = on_created or (lambda info: None)
        old = self._serving(name)
        same_port = old is not None and deploy.port != 0 and old.meta.get("port") == deploy.port
        if not same_port and deploy.port != 0 and _port_in_use(deploy.host, deploy.port):
            raise DogbreedError(self._port_taken(deploy.host, deploy.port))
        release = self._endpoint_root(name) / f"{datetime.now(timezone.utc):%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"
        release.mkdir(parents=True)
        release = release.resolve()
        try:
            model_dir = prepare_model_dir(request.model_uri, release / "model")
            foreign = check_handler_code(model_dir, request.model_uri, request.trust_code)
        except BaseException:
            shutil.rmtree(release, ignore_errors=True)
            raise
        if foreign:
            self.reporter.warn(f"--trust-code: serving {request.model_uri} with its own code ({'; '.join(foreign[:3])})")
        if same_port:
            self.reporter.info(f"stopping endpoint {name} (pid {old.meta['pid']}) first: the new server needs port {deploy.port}")
            stop_server(old.meta["pid"], name)
            old = None

        log = release / "server.log"
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **deploy.serving_environment()}
        with log.open("ab") as out:
            process = subprocess.Popen(
                self._argv(request, model_dir, release),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # not killed with the CLI's terminal or process group
                close_fds=True,
                env=env,
                cwd=release,
            )
        self.reporter.info(f"endpoint {name}: server pid {process.pid}, log {log}")
        try:
            # Recorded as soon as the process exists, and again once bound (an OS-picked port):
            # a CLI killed from here on leaves a server the ledger knows.
            fixed = f"http://{deploy.host}:{deploy.port}" if deploy.port else None
            created(self._started(request, process, release, model_dir, fixed, deploy.port, "creating", old))
            bound = self._wait_bound(name, process, release / "server.json", log)
            url = bound["url"]
            created(self._started(request, process, release, model_dir, url, bound["port"], "creating", old))
            # A replacement always waits: the old server must not stop before the new one answers.
            ready = wait or old is not None
            if ready:
                with self.reporter.task(f"Loading the model into endpoint {name}"):
                    self._wait_ready(name, process, url, log)
        except BaseException:
            if is_alive(process.pid):
                os.kill(process.pid, signal.SIGKILL)
            shutil.rmtree(release / "model", ignore_errors=True)
            raise
        if old is not None:
            stop_server(old.meta["pid"], name)
            old_release = old.meta.get("release")
            if old_release and Path(old_release) != release:
                shutil.rmtree(old_release, ignore_errors=True)
        state = "in-service" if ready else "creating"
        return self._started(request, process, release, model_dir, url, bound["port"], state, None)

    def _answering_url(self, record: Resource) -> str | None:
        """Where requests go: while a replacement loads, still the server it replaces."""
        replacing = record.meta.get("replacing") or {}
        if record.state == "creating" and replacing.get("url") and is_endpoint_server(replacing.get("pid"), record.name):
            return replacing["url"]
        return record.uri

    def invoke(self, endpoint: str, body: bytes, content_type: str, accept: str = "application/json") -> bytes:
        record = self._record(endpoint)
        url = self._answering_url(record) if record is not None and record.live else None
        if record is None or not url:
            state = f" (it is {record.state})" if record is not None else ""
            raise EndpointUnavailableError(
                f"endpoint {endpoint} is not deployed on the local backend{state}; "
                f"deploy it with `dogbreed deploy --endpoint {endpoint}`"
            )
        return EndpointClient(url, endpoint, self._http()).invoke(body, content_type, accept)

    def describe_endpoint(self, endpoint: str) -> EndpointInfo:
        record = self._record(endpoint)
        if record is None:
            return EndpointInfo(name=endpoint, backend=BACKEND, state="gone")
        if not record.live:
            return self._info(record, "gone")
        if not is_endpoint_server(record.meta.get("pid"), endpoint):
            seen = "gone"
        elif record.uri and EndpointClient(record.uri, endpoint, self._http()).ping():
            seen = "in-service"
        else:
            # Alive but not answering: still loading, or stuck. Not "gone": it holds a port
            # and memory, and teardown must still stop it.
            seen = "creating" if record.state == "creating" else "failed"
        return self._info(record, seen)

    def delete_endpoint(self, endpoint: str) -> bool:
        """Stop its server (and one it was replacing, if a deploy was cut short) and remove its
        files; False when the ledger has nothing of that name to delete."""
        record = self._record(endpoint)
        if record is None or record.state == "deleted":
            return False
        for pid in (record.meta.get("pid"), (record.meta.get("replacing") or {}).get("pid")):
            if pid and not stop_server(pid, endpoint) and is_alive(pid):
                self.reporter.warn(f"pid {pid} is no longer endpoint {endpoint}'s server; leaving that process alone")
        shutil.rmtree(self._endpoint_root(endpoint), ignore_errors=True)
        return True

    # --- starting a server

    def _port_taken(self, host: str, port: int) -> str:
        for record in self.workspace.ledger.list("endpoint", backend=BACKEND):
            if record.live and record.meta.get("port") == port and is_alive(record.meta.get("pid")):
                return (
                    f"port {port} on {host} is used by endpoint {record.name} (pid {record.meta['pid']}); "
                    f"deploy with --port 0 (any free port) or another port, or `dogbreed teardown {record.name}` first"
                )
        return f"port {port} on {host} is in use by another program; deploy with --port N, or --port 0 for any free port"

    def _start_failed(self, name: str, log: Path, why: str) -> DogbreedError:
        """One line: the server's last error line and where its whole log is. Never the
        traceback itself: a model that fails to load is a bad input, not a crash of ours."""
        tail = _tail(log)
        last = next((line for line in reversed(tail) if "ERROR" in line or "Error" in line), tail[-1] if tail else "")
        last = " ".join(last.split())[:300] or "no output"
        return DogbreedError(f"endpoint {name} {why}: {last} (full log: {log})")

    def _wait_bound(self, name: str, process: subprocess.Popen, state_file: Path, log: Path) -> dict[str, Any]:
        """The server's state file (pid, port, url): written as soon as it listens."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if process.poll() is not None:
                raise self._start_failed(name, log, f"exited with code {process.returncode} before listening")
            try:
                state = json.loads(state_file.read_text())
                if state.get("pid") == process.pid:
                    return state
            except (FileNotFoundError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise self._start_failed(name, log, f"was not listening after {READY_TIMEOUT_S:.0f} s")
            time.sleep(0.05)

    def _wait_ready(self, name: str, process: subprocess.Popen, url: str, log: Path) -> None:
        """Until /ping answers 200 (model loaded), the process dies, or the timeout."""
        client = EndpointClient(url, name, self._http())
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not client.ping(timeout=2.0):
            if process.poll() is not None:
                raise self._start_failed(name, log, f"exited with code {process.returncode} while loading")
            if time.monotonic() > deadline:
                raise self._start_failed(name, log, f"did not answer /ping within {READY_TIMEOUT_S:.0f} s")
            time.sleep(0.1)
