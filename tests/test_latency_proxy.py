"""dogbreed.testing.latency_proxy, which bench_ingest_s3.py puts in front of moto to measure
uploads at a real network's round trip: it must pass bytes through intact and in order, both
ways, pass on a half-close, keep to its connection bound and close everything when stopped.
Its delay is not asserted on (no wall-clock assertions): what matters here is that it is a
faithful pipe."""

from __future__ import annotations

import hashlib
import os
import socket
import threading

import pytest

from dogbreed.testing import latency_proxy


def read_to_end(conn: socket.socket) -> bytes:
    chunks = []
    while chunk := conn.recv(1 << 16):
        chunks.append(chunk)
    return b"".join(chunks)


class Upstream:
    """A TCP server on 127.0.0.1 that reads each connection to its end (the client's
    half-close), keeps what it got, and answers with the sha256 of it, then closes."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.received: list[bytes] = []
        self.accepted = 0
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return  # closed: the test is over
            self.accepted += 1
            with conn:
                data = read_to_end(conn)
                self.received.append(data)
                try:
                    conn.sendall(hashlib.sha256(data).hexdigest().encode())
                except OSError:
                    pass  # the proxy closed first (stopped)

    def close(self) -> None:
        self.sock.close()
        self.thread.join(5)


@pytest.fixture
def upstream():
    server = Upstream()
    yield server
    server.close()


def exchange(url: str, chunks: list[bytes]) -> bytes:
    """Send the chunks as separate writes, half-close, read the answer to its end."""
    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        for chunk in chunks:
            conn.sendall(chunk)
        conn.shutdown(socket.SHUT_WR)
        return read_to_end(conn)


def test_bytes_pass_intact_and_in_order_both_ways(upstream):
    # 200 back-to-back writes of random sizes: each is delayed on its own, none may overtake another.
    chunks = [os.urandom(size) for size in [1, 7, 4096, 65536, 100_000] * 40]
    sent = b"".join(chunks)
    with latency_proxy(upstream.url, delay_s=0.01) as proxy:
        answer = exchange(proxy.url, chunks)
    assert upstream.received == [sent]
    assert answer == hashlib.sha256(sent).hexdigest().encode()
    assert (proxy.bytes_up, proxy.bytes_down, proxy.connections) == (len(sent), len(answer), 1)


def test_concurrent_connections_stay_apart(upstream):
    payloads = [bytes([n]) * (10_000 + n) for n in range(8)]
    answers: dict[int, bytes] = {}
    with latency_proxy(upstream.url, delay_s=0.02) as proxy:
        threads = [
            threading.Thread(target=lambda n=n: answers.__setitem__(n, exchange(proxy.url, [payloads[n]]))) for n in range(8)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    assert sorted(upstream.received) == sorted(payloads)
    assert answers == {n: hashlib.sha256(p).hexdigest().encode() for n, p in enumerate(payloads)}


def test_connections_past_the_bound_are_closed_unanswered(upstream):
    with latency_proxy(upstream.url, delay_s=0.0, max_connections=2) as proxy:
        assert exchange(proxy.url, [b"one"]) and exchange(proxy.url, [b"two"])
        try:  # closed unread: a FIN, or a reset when "three" was already in its buffer
            assert exchange(proxy.url, [b"three"]) == b""
        except ConnectionResetError:
            pass
    assert upstream.received == [b"one", b"two"]
    assert (proxy.connections, proxy.refused, upstream.accepted) == (2, 1, 2)


def test_stop_closes_open_connections(upstream):
    port = None
    with latency_proxy(upstream.url, delay_s=0.0) as proxy:
        port = int(proxy.url.rsplit(":", 1)[1])
        held = socket.create_connection(("127.0.0.1", port), timeout=30)
        held.sendall(b"never finished")
        for _ in range(600):  # until the proxy has connected it upstream (bounded: 30 s)
            if upstream.accepted:
                break
            threading.Event().wait(0.05)
    with held:
        try:
            assert held.recv(1) == b""  # closed by stop(), not left hanging
        except ConnectionResetError:
            pass  # closed as well, less politely
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


def test_boto3_round_trip_through_the_proxy(aws_env):
    import boto3

    with latency_proxy(aws_env, delay_s=0.005) as proxy:
        s3 = boto3.client("s3", endpoint_url=proxy.url)
        s3.create_bucket(Bucket="proxied")
        body = os.urandom(50_000)
        s3.put_object(Bucket="proxied", Key="a/b.jpg", Body=body)
        assert s3.get_object(Bucket="proxied", Key="a/b.jpg")["Body"].read() == body
    assert proxy.bytes_up > len(body) and proxy.bytes_down > len(body)
