"""Junk where an archive should be (#15 item 5): formats are sniffed from a few bytes, once,
and a download is held to data.max_archive_bytes while it streams, with or without a
Content-Length. Real files, a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import http.server
import io
import os
import tarfile
import threading
import time
import zipfile

import pytest

from dogbreed.data.archives import archive_kind
from dogbreed.data.download import DownloadTooLargeError, download
from tests.conftest import dogbreed_cli
from tests.data.conftest import make_dogimages

LIMIT = 2 * 2**20  # data.max_archive_bytes in these tests
STREAM_CAP = 64 * 2**20  # the endless server stops here, so a test without the limit still ends


def _tar_bytes(mode: str) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode=mode) as tar:
        info = tarfile.TarInfo("dogs/Beagle/a.jpg")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"abc"))
    return out.getvalue()


def _zip_bytes() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("dogs/Beagle/a.jpg", b"abc")
    return out.getvalue()


@pytest.mark.parametrize(
    ("content", "kind"),
    [
        (lambda: _zip_bytes(), "zip"),
        (lambda: b"MZ self-extracting stub" + _zip_bytes(), "zip"),
        (lambda: _tar_bytes("w"), "tar"),
        (lambda: _tar_bytes("w:gz"), "tar.gz"),
        (lambda: _tar_bytes("w:bz2"), "tar.bz2"),
        (lambda: _tar_bytes("w:xz"), "tar.xz"),
        (lambda: bytes(4096), None),
        (lambda: b"<html>not found</html>", None),
        (lambda: b"", None),
    ],
)
def test_formats_are_told_from_their_first_bytes(tmp_path, content, kind):
    path = tmp_path / "source.tar"  # the name says nothing
    path.write_bytes(content())
    assert archive_kind(path) == kind


def test_zeros_named_tar_are_refused_without_a_trial_decompression(tmp_path):
    zeros = tmp_path / "zeros.tar"
    with open(zeros, "wb") as handle:
        handle.truncate(64 * 2**20)  # 64 MiB of zeros (sparse): a decompression probe reads it all
    result = dogbreed_cli("ingest", str(zeros), "--json", "--set", f"workspace={tmp_path / 'ws'}", cwd=tmp_path, timeout=120)
    assert result.returncode == 2, result.stderr
    assert "not a folder or a zip/tar archive" in result.stderr  # not "no photos found" after a probe


class _Endless(http.server.BaseHTTPRequestHandler):
    """Streams zeros with no Content-Length (HTTP/1.0, the end is the close), up to STREAM_CAP."""

    sent: list[int]

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/zip")
        self.end_headers()
        sent = 0
        try:
            while sent < STREAM_CAP:
                self.wfile.write(bytes(65536))
                sent += 65536
        except OSError:
            pass  # the client hung up: what we want
        finally:
            type(self).sent.append(sent)


@pytest.fixture
def endless_server():
    handler = type("Handler", (_Endless,), {"sent": []})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", handler.sent
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


def test_a_download_without_content_length_stops_at_the_limit(tmp_path, endless_server):
    url, sent = endless_server
    dest = tmp_path / "dl" / "big.zip"
    with pytest.raises(DownloadTooLargeError, match=f"over data.max_archive_bytes={LIMIT:,} bytes"):
        download(url + "/big.zip", dest, max_bytes=LIMIT, backoff=0)
    assert not dest.exists() and not list(dest.parent.glob("*.part"))  # nothing half-kept
    # The client hung up at the limit: the server's writes fail (plus what sat in socket
    # buffers) far before the cap it would otherwise stream.
    deadline = time.monotonic() + 60
    while not sent and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sent and sent[0] < LIMIT + 16 * 2**20


def test_ingest_of_an_endless_url_is_one_line_naming_the_key(tmp_path, endless_server):
    url, _ = endless_server
    result = dogbreed_cli(
        "ingest", url + "/dogImages.zip", "--json", "--set", f"workspace={tmp_path / 'ws'}",
        "--set", f"data.max_archive_bytes={LIMIT}", cwd=tmp_path, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1 and result.stdout == ""
    lines = [line for line in result.stderr.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "data.max_archive_bytes" in lines[0] and url in lines[0]


def test_a_declared_size_over_the_limit_is_refused_before_the_body(tmp_path, file_server):
    file_server.files["/big.zip"] = bytes(LIMIT + 1)
    with pytest.raises(DownloadTooLargeError, match=f"its size is {LIMIT + 1:,} bytes"):
        download(file_server.url + "/big.zip", tmp_path / "big.zip", max_bytes=LIMIT, backoff=0)


def test_a_good_archive_under_the_limit_still_ingests(tmp_path, file_server):
    source = make_dogimages(tmp_path / "src", breeds=2)
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:xz") as tar:
        tar.add(source, arcname="dogImages")
    file_server.files["/dogImages.tar.xz"] = out.getvalue()
    result = dogbreed_cli(
        "ingest", file_server.url + "/dogImages.tar.xz", "--json", "--set", f"workspace={tmp_path / 'ws'}", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert '"num_classes": 2' in result.stdout


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs (POSIX)")
def test_a_fifo_named_tar_is_refused_unopened(tmp_path):
    fifo = tmp_path / "pipe.tar"
    os.mkfifo(fifo)
    result = dogbreed_cli("ingest", str(fifo), "--json", "--set", f"workspace={tmp_path / 'ws'}", cwd=tmp_path, timeout=120)
    assert result.returncode != 0 and "FIFO" in result.stderr
