"""Files that are not photos though named like them (#15 item 3): a FIFO, a link to
/dev/zero, a socket, a huge sparse file. Each is a problem of its own file, found before a
byte is read; none hangs ingest or fills memory."""

from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path

import pytest

from dogbreed.regular_files import FileRefusedError, check_regular, open_regular, read_regular
from tests.conftest import dogbreed_cli
from tests.data.conftest import photos

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs (POSIX)")

HANG_LIMIT_S = 120  # generous for a busy 2-core machine; a hang would never end


def _hostile(folder: Path) -> dict[str, str]:
    """Hostile files in folder, by name -> the words their problem must contain."""
    folder.mkdir(parents=True, exist_ok=True)
    os.mkfifo(folder / "fifo.jpg")
    (folder / "zero.jpg").symlink_to("/dev/zero")
    (folder / "dir.jpg").mkdir()
    (folder / "dir.jpg" / "inner.txt").write_text("a folder named .jpg holds files")
    with open(folder / "sparse.jpg", "wb") as sparse:
        sparse.truncate(3 * 2**30)  # 3 GiB that occupy no disk
    return {"fifo.jpg": "FIFO", "zero.jpg": "symlink to a character device", "sparse.jpg": "too large"}


def test_the_gate_refuses_everything_but_regular_files_before_reading(tmp_path):
    _hostile(tmp_path)
    with pytest.raises(FileRefusedError, match="FIFO"):
        open_regular(tmp_path / "fifo.jpg")  # would block forever if it were opened
    with pytest.raises(FileRefusedError, match="symlink to a character device"):
        read_regular(tmp_path / "zero.jpg", 1 << 20)
    with pytest.raises(FileRefusedError, match="a folder"):
        check_regular(tmp_path / "dir.jpg")
    with pytest.raises(FileRefusedError, match=r"too large: 3,221,225,472 bytes > data.max_image_bytes"):
        check_regular(tmp_path / "sparse.jpg", 2**20, "data.max_image_bytes")
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(tmp_path / "sock.jpg"))
        with pytest.raises(FileRefusedError, match="socket"):
            check_regular(tmp_path / "sock.jpg")
    with pytest.raises(FileRefusedError, match="unreadable"):
        check_regular(tmp_path / "missing.jpg")
    # A link to a real photo is a photo.
    (tmp_path / "link.jpg").symlink_to(photos()[0])
    assert read_regular(tmp_path / "link.jpg", 10 * 2**20) == photos()[0].read_bytes()


def _source(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    source = tmp_path / "dogs"
    for folder in ("n02088364-beagle", "n02110806-basenji"):
        shutil.copytree(photos()[0].parents[1] / folder, source / folder)
    expected = {f"n02088364-beagle/{name}": words for name, words in _hostile(source / "n02088364-beagle").items()}
    expected["n02088364-beagle/dir.jpg/inner.txt"] = ""  # a folder named .jpg is entered, its file checked
    return source, expected


def test_ingest_reports_each_hostile_file_and_keeps_the_photos(tmp_path):
    source, expected = _source(tmp_path)
    result = dogbreed_cli("ingest", str(source), "--json", "--dest", str(tmp_path / "ds"), cwd=tmp_path, timeout=HANG_LIMIT_S)
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    problems = {p["file"]: p["problem"] for p in answer["problems"]}
    for file, words in expected.items():
        assert words in problems.get(file, "<missing>"), (file, problems)
    assert answer["num_classes"] == 2 and sum(answer["splits"].values()) == 20


def test_the_size_limit_is_a_config_key(tmp_path):
    source, _ = _source(tmp_path)
    small = sorted((source / "n02110806-basenji").iterdir())[0]
    limit = small.stat().st_size - 1
    result = dogbreed_cli(
        "ingest", str(source), "--json", "--dest", str(tmp_path / "ds"), "--set", f"data.max_image_bytes={limit}",
        cwd=tmp_path, timeout=HANG_LIMIT_S,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    problems = {p["file"]: p["problem"] for p in json.loads(result.stdout)["problems"]}
    assert f"> data.max_image_bytes {limit:,}" in problems[f"n02110806-basenji/{small.name}"]


def test_strict_ingest_fails_on_them_in_one_line(tmp_path):
    source, _ = _source(tmp_path)
    result = dogbreed_cli(
        "ingest", str(source), "--json", "--strict", "--dest", str(tmp_path / "ds"), cwd=tmp_path, timeout=HANG_LIMIT_S
    )
    assert result.returncode == 1 and result.stdout == ""
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]  # progress lines aside
    assert len(errors) == 1 and "--strict" in errors[0]
    assert not (tmp_path / "ds").exists()
