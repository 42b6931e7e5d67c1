"""A real headless browser for report tests: Debian's chromium, started and always killed.

Chromium is installed with apt when missing (CI runs as root on Debian); tests skip only
where apt itself is unavailable. The flags keep it off the network and out of the user's
profile: this machine has no network, and a fresh --user-data-dir per run keeps runs apart.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest

NAMES = ("chromium", "chromium-browser")
FLAGS = (
    "--headless",
    "--no-sandbox",  # we run as root in CI, where the sandbox refuses to start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)

# Chromium's own requests (its network clock, safe-browsing and translation services), which
# would reach a proxy probe and be mistaken for the page's: off, so the probe sees the page only.
QUIET_FLAGS = (
    "--disable-features=NetworkTimeServiceQuerying,Translate,OptimizationHints,MediaRouter,AutofillServerCommunication",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--safebrowsing-disable-auto-update",
    "--no-pings",
    "--no-default-browser-check",
    "--metrics-recording-only",
)


def find_chromium() -> str | None:
    for name in NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def ensure_chromium() -> str:
    """chromium's path, installing Debian's package when it is missing."""
    found = find_chromium()
    if found:
        return found
    apt = shutil.which("apt-get")
    if apt is None:
        pytest.skip("chromium is not installed and apt-get is unavailable to install it (see `make browser`)")
    if os.geteuid() != 0:
        pytest.skip("chromium is not installed and installing it with apt-get needs root (see `make browser`)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in ([apt, "update"], [apt, "install", "-y", "chromium"]):
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900, check=False)
        if done.returncode != 0:
            pytest.fail(f"{' '.join(command)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    found = find_chromium()
    if not found:
        pytest.fail("apt-get installed chromium but no chromium binary is on PATH")
    return found


def screenshot(chromium: str, page: Path, out: Path, width: int = 1200, height: int = 2400, timeout: float = 120) -> Path:
    """Load `page` (a local file) in headless chromium and save a PNG screenshot of it."""
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        command = [
            chromium,
            *FLAGS,
            f"--user-data-dir={profile}",
            f"--window-size={width},{height}",
            f"--screenshot={out}",
            page.resolve().as_uri(),
        ]
        # Its own process group, so the renderer and GPU helpers go with it.
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
    if proc.returncode != 0 or not out.is_file():
        raise AssertionError(f"chromium failed (exit {proc.returncode}):\n{stdout[-2000:]}\n{stderr[-2000:]}")
    return out


def dump_dom(chromium: str, page: Path, proxy: str | None = None, timeout: float = 120) -> str:
    """Load `page` in headless chromium and return the DOM after its load event (scripts
    run, images decoded). With `proxy`, every http(s) request the page makes, to any host,
    goes to that address instead: a probe there sees any fetch at all."""
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        command = [chromium, *FLAGS, *QUIET_FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=10000", "--dump-dom"]
        if proxy:
            # <-loopback> drops chromium's implicit loopback bypass, so nothing escapes the probe.
            command += [f"--proxy-server={proxy}", "--proxy-bypass-list=<-loopback>"]
        command.append(page.resolve().as_uri())
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
    if proc.returncode != 0 or "<html" not in stdout:
        raise AssertionError(f"chromium failed (exit {proc.returncode}):\n{stdout[-2000:]}\n{stderr[-2000:]}")
    return stdout
