"""Fixtures every test area shares: the vendored sample, a workspace, and AWS on moto."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def dogs_dir() -> Path:
    """10 breeds x 10 real photos, Stanford Dogs layout (examples/SOURCE.md)."""
    return EXAMPLES / "dogs"


@pytest.fixture(scope="session")
def predict_dir() -> Path:
    """11 real photos the model never trains on: 10 dogs and a cat."""
    return EXAMPLES / "predict"


@pytest.fixture(scope="session")
def imagenet_weights() -> Path:
    """Real ImageNet weights for torchvision mobilenet_v2 (float16 state_dict)."""
    return EXAMPLES / "weights" / "mobilenet_v2-imagenet1k-from-int8.fp16.pth"


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    return tmp_path / ".dogbreed"


@pytest.fixture(scope="session")
def moto_server():
    """A real moto server on 127.0.0.1, so boto3's whole HTTP path runs. Yields its URL."""
    from dogbreed.testing import moto_server as running

    with running() as url:
        yield url


@pytest.fixture
def aws_env(moto_server, monkeypatch):
    """Fake credentials and every AWS client aimed at the moto server; state reset per test."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    urllib.request.urlopen(urllib.request.Request(moto_server + "/moto-api/reset", method="POST"), timeout=10)
    yield moto_server


def dogbreed_cli(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 600):
    """Run the real console script as a subprocess (what users and CI run)."""
    exe = Path(sys.executable).parent / "dogbreed"
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([str(exe), *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout, check=False)


def error_line(stderr: str) -> str:
    """The one error line of a failed command: the last line of stderr and the only error there
    (log lines may come before it, with --json too: stderr carries the log)."""
    lines = stderr.strip().splitlines()
    assert [line for line in lines if line.startswith("error:")] == lines[-1:], stderr
    return lines[-1]


def interruptible() -> None:
    """Popen's preexec_fn for a CLI a test will Ctrl-C: SIGINT back to its default, as in a
    terminal. A shell starts background jobs (`make test &`, nohup) with SIGINT ignored, the
    children inherit that, and Python then installs no KeyboardInterrupt handler: the
    test's Ctrl-C would be dropped and the job run to the end."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def wait_for(predicate, what: str, timeout: float = 240):
    """What `predicate` returns once it is truthy, polled every 0.1 s; fails after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")
