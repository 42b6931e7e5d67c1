"""Requests and files built to hurt (#15 item 8): JSON nested 100,000 deep is a 400, chunked
trailers have a size limit, and predict checks a file (stat) before it reads a byte."""

from __future__ import annotations

import os
import socket

import pytest

from dogbreed.regular_files import FileRefusedError
from dogbreed.serving.http_server import MAX_TRAILER_BYTES
from dogbreed.serving.model_handler import ModelHandler
from dogbreed.serving.upload import MAX_FILE_BYTES, prepare
from dogbreed.workflows.predict import expand_images
from tests.serving.images import COLLIE
from tests.serving.test_server_http import assert_still_serving, post

DEEP = b"[" * 100_000


def test_deeply_nested_json_is_a_400_and_the_server_serves_on(served):
    for body in (DEEP, b'{"images": ' + DEEP, b'{"a":' * 50_000):
        status, _, answer = post(served, body, "application/json")
        assert status == 400, answer
        assert b"nests too deeply" in answer
    assert_still_serving(served)


def test_any_handler_that_recurses_on_a_request_answers_400(tmp_path):
    code = tmp_path / "model" / "code"
    code.mkdir(parents=True)
    (code / "recursing_handler.py").write_text(
        "import json\n"
        "def model_fn(model_dir): return None\n"
        "def input_fn(body, content_type): return json.loads(body)\n"
        "def predict_fn(data, model): return data\n"
        "def output_fn(prediction, accept): return '{}', 'application/json'\n"
    )
    handler = ModelHandler.load(tmp_path / "model", "recursing_handler.py")
    reply = handler.invoke(DEEP, "application/json", "application/json")
    assert reply.status == 400 and b"nests too deeply" in reply.body


def _chunked(port: int, trailer_lines: list[bytes]) -> bytes:
    """POST one chunked COLLIE with these trailer lines; the raw response."""
    body = COLLIE.read_bytes()
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(
            b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nTransfer-Encoding: chunked\r\n\r\n"
            + f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n"
        )  # fmt: skip
        try:
            for line in trailer_lines:
                sock.sendall(line)
            sock.sendall(b"\r\n")
        except OSError:
            pass  # the server may close once it has refused: that is the point
        sock.shutdown(socket.SHUT_WR)
        response = b""
        while chunk := sock.recv(65536):
            response += chunk
    return response


def test_chunked_trailers_are_bounded(served):
    small = _chunked(served.port, [b"X-Checksum: abc\r\n"])
    assert small.startswith(b"HTTP/1.1 200"), small[:200]
    line = b"X-Junk: " + b"a" * 1000 + b"\r\n"
    flood = _chunked(served.port, [line] * (2 * MAX_TRAILER_BYTES // len(line)))
    assert flood.startswith(b"HTTP/1.1 431"), flood[:200]
    assert b"trailers_too_large" in flood
    assert_still_serving(served)


def test_a_negative_chunk_size_is_a_400(served):
    with socket.create_connection(("127.0.0.1", served.port), timeout=60) as sock:
        sock.sendall(
            b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n"
        )
        sock.shutdown(socket.SHUT_WR)
        response = sock.recv(65536)
    assert response.startswith(b"HTTP/1.1 400"), response[:200]


def test_predict_checks_a_file_before_reading_it(tmp_path):
    sparse = tmp_path / "huge.jpg"
    with open(sparse, "wb") as handle:
        handle.truncate(MAX_FILE_BYTES + 1)  # no disk used; reading it would take the memory
    with pytest.raises(FileRefusedError, match="too large: .* refused before reading"):
        prepare(sparse)
    zero = tmp_path / "zero.jpg"
    zero.symlink_to("/dev/zero")
    with pytest.raises(FileRefusedError, match="character device"):
        prepare(zero)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_predict_arguments_that_are_no_files_are_rows_not_hangs(tmp_path):
    os.mkfifo(tmp_path / "fifo.jpg")
    (tmp_path / "zero.jpg").symlink_to("/dev/zero")
    paths, errors = expand_images([str(tmp_path / "fifo.jpg"), str(tmp_path / "zero.jpg"), str(COLLIE)])
    assert paths == [COLLIE]
    assert {row["image"]: row["error"] for row in errors} == {
        str(tmp_path / "fifo.jpg"): "not a regular file (a FIFO (named pipe)); refused before reading",
        str(tmp_path / "zero.jpg"): "not a regular file (a symlink to a character device); refused before reading",
    }
