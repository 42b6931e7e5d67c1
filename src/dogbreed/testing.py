"""Helpers for tests and benchmarks, not for the product: a moto server on 127.0.0.1, the AWS
stand-in they aim boto3 at (AWS_ENDPOINT_URL), so boto3's real HTTP path runs with no AWS
account and no network. Kept out of aws/ (the product's gateway); nothing in the product
imports it."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def moto_server(start_timeout: float = 30, command: list[str] | None = None, env: dict[str, str] | None = None) -> Iterator[str]:
    """Start `moto_server` (the dev extra) on a free loopback port, yield its URL, stop it.
    `command`: another server that takes moto_server's -H/-p (a test's extended moto), run
    with `env` as its environment."""
    if command is None:
        binary = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or shutil.which("moto_server")
        if binary is None:
            raise RuntimeError("moto_server not found: install the dev extra (pip install -e '.[dev]')")
        command = [binary]
    port = _free_port()
    proc = subprocess.Popen(
        [*command, "-H", "127.0.0.1", "-p", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + start_timeout
        while True:
            try:
                urllib.request.urlopen(url + "/moto-api/", timeout=1)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{' '.join(command)} did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
