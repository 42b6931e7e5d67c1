"""Requests and files built to hurt (#15 item 8): JSON nested 100,000 deep is a 400, chunked
trailers have a size limit, a body that never arrives is a 408, a client that hangs up is one
log line, and predict checks a file (stat) before it reads a byte."""

from __future__ import annotations

import http.client
import json
import os
import socket
import struct

import pytest

from dogbreed.regular_files import FileRefusedError
from dogbreed.serving.http_server import MAX_TRAILER_BYTES
from dogbreed.serving.model_handler import ModelHandler
from dogbreed.serving.upload import MAX_FILE_BYTES, prepare
from dogbreed.workflows.predict import expand_images
from tests.serving.images import COLLIE
from tests.serving.test_lifecycle import wait_until
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


def _stub_answers(port: int) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request("POST", "/invocations", body=b"quick", headers={"Content-Type": "image/jpeg"})
        return connection.getresponse().status
    finally:
        connection.close()


def _read_all(sock: socket.socket) -> bytes:
    response = b""
    while chunk := sock.recv(65536):
        response += chunk
    return response


@pytest.mark.parametrize(
    "head",
    [
        b"Content-Length: 5000000\r\n\r\nabc",
        b"Transfer-Encoding: chunked\r\n\r\n1000\r\nabc",  # a chunk that never ends
        b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n",  # no next chunk size line
    ],
    ids=["content-length", "chunk", "chunk-size-line"],
)
def test_a_body_that_never_arrives_is_a_408_and_the_server_serves_on(no_server_left, start_server, stub_model_dir, head):
    # The limit is short here so the test does not wait a minute; deploy's is the 60 s one.
    server = start_server(stub_model_dir, "--body-timeout", "0.5", "--workers", "2").wait_ready()
    with socket.create_connection(("127.0.0.1", server.port), timeout=60) as slow:
        slow.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n" + head)
        assert _stub_answers(server.port) == 200  # other clients are served while this one stalls
        response = _read_all(slow)  # the server closes: recv returns b"" instead of timing out
    head_part, _, body = response.partition(b"\r\n\r\n")
    assert head_part.startswith(b"HTTP/1.1 408"), response[:300]
    assert b"Connection: close" in head_part and b"Content-Type: application/json" in head_part
    answer = json.loads(body)
    assert answer["error"] == "request_timeout" and "did not arrive within 0.5 s" in answer["detail"]
    assert _stub_answers(server.port) == 200


def test_a_client_that_hangs_up_mid_answer_is_one_log_line(no_server_left, start_server, stub_model_dir):
    server = start_server(stub_model_dir, "--workers", "2").wait_ready()
    with socket.create_connection(("127.0.0.1", server.port), timeout=60) as sock:
        sock.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: 4\r\n\r\nhold")
        wait_until((stub_model_dir / "held").exists, "the request to reach predict_fn")
        # Close with a reset (linger 0): the server's answer then meets a dead socket.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    (stub_model_dir / "release").touch()
    wait_until(lambda: "disconnected" in server.log.read_text() or "Traceback" in server.log.read_text(), "the hang-up")
    log = server.log.read_text()
    assert "client disconnected during POST /invocations" in log
    assert "Traceback" not in log and "BrokenPipeError" not in log and "ConnectionResetError" not in log
    assert _stub_answers(server.port) == 200
