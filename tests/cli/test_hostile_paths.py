"""Every file a user hands the CLI goes through the regular-file gate (#15 item 3's class):
a FIFO, a link to /dev/zero or a huge file given as --config or --model is one line, never
a hang. Subprocesses with a timeout, so a hang fails instead of blocking the suite."""

from __future__ import annotations

import os

import pytest

from tests.conftest import dogbreed_cli

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs (POSIX)")

HANG_LIMIT_S = 60


@pytest.fixture
def hostile(tmp_path):
    os.mkfifo(tmp_path / "fifo.yaml")
    (tmp_path / "zero.yaml").symlink_to("/dev/zero")
    with open(tmp_path / "huge.yaml", "wb") as handle:
        handle.truncate(2**30)  # sparse: no disk used
    return tmp_path


@pytest.mark.parametrize(
    ("name", "words"), [("fifo.yaml", "FIFO"), ("zero.yaml", "character device"), ("huge.yaml", "too large")]
)
def test_a_config_that_is_no_file_is_a_usage_error(hostile, name, words):
    result = dogbreed_cli("config", "show", "-c", str(hostile / name), cwd=hostile, timeout=HANG_LIMIT_S)
    assert result.returncode == 2 and words in result.stderr and str(hostile / name) in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(("name", "words"), [("fifo.yaml", "FIFO"), ("zero.yaml", "character device")])
def test_a_model_that_is_no_file_is_one_line(hostile, name, words):
    model = hostile / name
    result = dogbreed_cli(
        "deploy", "--model", str(model), "--json", "--set", f"workspace={hostile / 'ws'}", cwd=hostile, timeout=HANG_LIMIT_S
    )
    assert result.returncode == 1 and words in result.stderr and result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
