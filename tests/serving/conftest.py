"""Fixtures for the serving tests: a real trained model, servers run as deploy runs them,
and a guard that no test leaves a server process behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.serving.model_factory import cached_model_dir, pack
from tests.serving.stub_model import build_stub_model_dir

ENDPOINT = "test-endpoint"


def servers_under(root: Path) -> list[int]:
    """Pids of live `python -m dogbreed.serving` processes whose arguments point under root."""
    if not Path("/proc/self").exists():  # macOS: ps instead of /proc
        listing = subprocess.run(["ps", "-eo", "pid=,stat=,args="], capture_output=True, text=True).stdout
        rows = [line.split(None, 2) for line in listing.splitlines() if len(line.split(None, 2)) == 3]
        return [int(pid) for pid, stat, args in rows if "Z" not in stat and "dogbreed.serving" in args and str(root) in args]
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rpartition(")")[2].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z" and b"dogbreed.serving" in argv and any(str(root).encode() in arg for arg in argv):
            found.append(int(entry.name))
    return found


def _kill_all(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.fixture(scope="session", autouse=True)
def no_server_left_at_the_end(tmp_path_factory):
    root = tmp_path_factory.getbasetemp()
    yield
    left = servers_under(root)
    _kill_all(left)
    assert not left, f"server processes left behind by the serving tests: {left}"


@pytest.fixture
def no_server_left(tmp_path):
    """For tests that start servers under tmp_path: none may outlive the test."""
    yield
    left = servers_under(tmp_path)
    _kill_all(left)
    assert not left, f"this test left server processes behind: {left}"


@pytest.fixture(scope="session")
def model_dir(request, tmp_path_factory, dogs_dir, imagenet_weights) -> Path:
    """A real trained model dir; its weights are cached in .pytest_cache between runs."""
    cache = getattr(request.config, "cache", None)
    cache_root = cache.mkdir("dogbreed-serving-model") if cache is not None else None
    return cached_model_dir(tmp_path_factory.mktemp("model") / "model", cache_root, dogs_dir, imagenet_weights)


@pytest.fixture(scope="session")
def model_tar(model_dir, tmp_path_factory) -> Path:
    return pack(model_dir, tmp_path_factory.mktemp("artifact") / "model.tar.gz")


@pytest.fixture
def stub_model_dir(tmp_path) -> Path:
    return build_stub_model_dir(tmp_path / "stub-model")


class Server:
    """A `python -m dogbreed.serving` subprocess, started the way deploy starts it."""

    def __init__(self, model_dir: Path, folder: Path, name: str = ENDPOINT, *extra: str) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.state_file = folder / "server.json"
        self.log = folder / "server.log"
        argv = [sys.executable, "-m", "dogbreed.serving", "--name", name, "--model-dir", str(model_dir)]
        argv += ["--port", "0", "--state-file", str(self.state_file), "--log-file", str(self.log), *extra]
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self.url = self._wait_bound()

    def _wait_bound(self) -> str:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()
            try:
                state = json.loads(self.state_file.read_text())
                if state["pid"] == self.process.pid:
                    return state["url"]
            except (FileNotFoundError, ValueError):
                pass
            time.sleep(0.05)
        raise AssertionError("the server never listened")

    def wait_ready(self) -> Server:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()
            try:
                if urllib.request.urlopen(self.url + "/ping", timeout=2).status == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError("the server never answered /ping")

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(timeout=120)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait()


@pytest.fixture(scope="session")
def served(model_dir, tmp_path_factory):
    """One real-model server shared by the request tests (the model loads once)."""
    server = Server(model_dir, tmp_path_factory.mktemp("served"), ENDPOINT, "--workers", "2").wait_ready()
    yield server
    assert server.stop() == 0, server.log.read_text()


@pytest.fixture
def start_server(tmp_path):
    """Start servers for one test; stops whatever is still running afterwards."""
    started: list[Server] = []

    def start(model_dir: Path, *extra: str, name: str = ENDPOINT) -> Server:
        server = Server(model_dir, tmp_path / f"server-{len(started)}", name, *extra)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def fake_aws(monkeypatch):
    """Fake credentials: boto3 signs requests, which never leave 127.0.0.1."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
