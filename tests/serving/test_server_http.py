"""The local endpoint over real HTTP: a real-model server subprocess, as deploy runs it."""

from __future__ import annotations

import base64
import http.client
import json
import socket

import pytest

from dogbreed.serving.limits import MAX_PAYLOAD_BYTES
from tests.serving.images import BEAGLE, COLLIE, png_bomb, variants


def post(server, body: bytes, content_type: str | None = "image/jpeg", path="/invocations", headers=None):
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
    try:
        sent = {"Accept": "application/json", **({"Content-Type": content_type} if content_type else {}), **(headers or {})}
        connection.request("POST", path, body=body, headers=sent)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def labels(body: bytes) -> list[str]:
    return [p["top"][0]["label"].lower() for p in json.loads(body)["predictions"]]


def assert_still_serving(server):
    status, _, body = post(server, COLLIE.read_bytes())
    assert status == 200 and labels(body) == ["collie"]


def test_ping_is_200_with_an_empty_body(served):
    connection = http.client.HTTPConnection("127.0.0.1", served.port, timeout=30)
    connection.request("GET", "/ping")
    response = connection.getresponse()
    assert (response.status, response.read()) == (200, b"")


@pytest.mark.parametrize("kind", ["jpeg", "png", "grayscale", "rgba"])
def test_images_get_breed_names(served, kind):
    body, content_type = variants()[kind]
    status, headers, answer = post(served, body, content_type)
    assert status == 200, answer
    assert headers["Content-Type"] == "application/json"
    top = json.loads(answer)["predictions"][0]["top"]
    assert top[0]["label"].lower() == "beagle" and len(top) == 5
    assert {"label", "index", "probability"} == set(top[0])


def test_json_batch_and_top_k_in_accept(served):
    images = [base64.b64encode(p.read_bytes()).decode() for p in (BEAGLE, COLLIE)]
    status, _, answer = post(
        served, json.dumps({"images": images}).encode(), "application/json", headers={"Accept": "application/json; top_k=2"}
    )
    assert status == 200 and labels(answer) == ["beagle", "collie"]
    assert [len(p["top"]) for p in json.loads(answer)["predictions"]] == [2, 2]


@pytest.mark.parametrize(
    ("body", "content_type", "status", "error"),
    [
        (b"\x00\x01garbage bytes", "image/jpeg", 400, "undecodable_image"),
        (b"", "image/jpeg", 400, "bad_request"),
        (b"just some text", "text/plain", 415, "unsupported_content_type"),
        (BEAGLE.read_bytes(), "image/gif", 415, "unsupported_content_type"),
        (BEAGLE.read_bytes(), None, 415, "unsupported_content_type"),
        (png_bomb(), "image/png", 413, "too_large"),
        (b"{broken", "application/json", 400, "bad_request"),
    ],
)
def test_bad_requests_get_json_4xx_and_the_server_goes_on(served, body, content_type, status, error):
    got, headers, answer = post(served, body, content_type)
    assert got == status
    assert headers["Content-Type"] == "application/json"
    document = json.loads(answer)
    assert document["error"] == error and document["detail"]
    assert_still_serving(served)


def test_oversized_body_is_refused_from_the_headers_alone(served):
    """Only the headers are sent: a server that waited for the body would never answer."""
    with socket.create_connection(("127.0.0.1", served.port), timeout=60) as sock:
        sock.sendall(
            b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
            + f"Content-Length: {MAX_PAYLOAD_BYTES + 1}\r\n\r\n".encode()
        )
        response = http.client.HTTPResponse(sock)
        response.begin()
        assert response.status == 413
        assert json.loads(response.read())["error"] == "payload_too_large"
    assert_still_serving(served)


def test_exactly_the_limit_is_allowed_through(served):
    status, _, answer = post(served, b"\0" * MAX_PAYLOAD_BYTES)
    assert status == 400 and json.loads(answer)["error"] == "undecodable_image"  # read, then judged by the model


def test_oversized_chunked_body_is_refused_while_reading(served):
    connection = http.client.HTTPConnection("127.0.0.1", served.port, timeout=120)
    chunks = (b"\0" * 1_000_000 for _ in range(7))
    connection.request("POST", "/invocations", body=chunks, headers={"Content-Type": "image/jpeg"}, encode_chunked=True)
    response = connection.getresponse()
    assert response.status == 413 and json.loads(response.read())["error"] == "payload_too_large"
    assert_still_serving(served)


def test_expect_100_continue_gets_the_413_instead_of_continue(served):
    with socket.create_connection(("127.0.0.1", served.port), timeout=60) as sock:
        sock.sendall(
            b"POST /invocations HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
            + f"Content-Length: {MAX_PAYLOAD_BYTES * 2}\r\n\r\n".encode()
        )
        response = http.client.HTTPResponse(sock)
        response.begin()
        assert response.status == 413


def test_keep_alive_serves_many_requests_on_one_connection(served):
    connection = http.client.HTTPConnection("127.0.0.1", served.port, timeout=120)
    connection.connect()
    first = connection.sock
    for path in (BEAGLE, COLLIE, BEAGLE):
        connection.request("POST", "/invocations", body=path.read_bytes(), headers={"Content-Type": "image/jpeg"})
        response = connection.getresponse()
        assert response.status == 200
        response.read()
    assert connection.sock is first
    connection.close()


def test_accepted_sockets_disable_nagle(served):
    """The option on a socket accepted by the server class (latency itself is not asserted)."""
    from dogbreed.serving.http_server import EndpointServer

    server = EndpointServer(("127.0.0.1", 0), "nagle-check", workers=1)
    try:
        client = socket.create_connection(("127.0.0.1", server.port))
        accepted, _ = server.get_request()
        assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        accepted.close()
        client.close()
    finally:
        server.server_close()
        server.pool.shutdown()


def test_unknown_route_is_404_json(served):
    status, _, answer = post(served, b"x", path="/predict")
    assert status == 404 and json.loads(answer)["error"] == "not_found"
