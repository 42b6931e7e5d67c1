"""Helpers for tests and benchmarks, not for the product: a moto server on 127.0.0.1, the AWS
stand-in they aim boto3 at (AWS_ENDPOINT_URL), so boto3's real HTTP path runs with no AWS
account and no network, and a latency-adding TCP proxy to put in front of it, for S3 as far
away as it really is. Kept out of aws/ (the product's gateway); nothing in the product
imports it."""

from __future__ import annotations

import asyncio
import multiprocessing
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.connection import Connection
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


class LatencyProxy:
    """A TCP proxy on 127.0.0.1 that holds every chunk a client sends for `delay_s` before it
    forwards it upstream: each request reaches the server `delay_s` late, as if over a network
    with that round trip. A delay line, not a queue: chunks are forwarded `delay_s` after they
    arrived, in order, so concurrent connections (and back-to-back chunks of one) overlap their
    waits the way they overlap on a real network. Answers come back undelayed.

    Bounded so a benchmark or test that goes wrong cannot leave it running: at most
    `max_connections` connections in its lifetime (later ones are closed unanswered) and it
    stops after `lifetime_s`. Counts what it forwarded, for the tests that check it."""

    def __init__(self, upstream: str, delay_s: float, max_connections: int, lifetime_s: float) -> None:
        host, _, port = upstream.removeprefix("http://").rstrip("/").rpartition(":")
        self.upstream = (host, int(port))
        self.delay_s, self.max_connections, self.lifetime_s = delay_s, max_connections, lifetime_s
        self.connections = self.refused = self.bytes_up = self.bytes_down = 0
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="latency-proxy", daemon=True)

    def start(self) -> LatencyProxy:
        ready = threading.Event()
        self._ready = ready
        self._thread.start()
        if not ready.wait(10) or not self.url:
            raise RuntimeError("latency proxy did not start")
        return self

    def stop(self) -> None:
        if self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
        if self._thread.is_alive():
            raise RuntimeError("latency proxy did not stop within 10 s")

    def _run(self) -> None:
        self._loop.run_until_complete(self._serve())
        self._loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        tasks: set[asyncio.Task] = set()

        def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            if self.connections >= self.max_connections:
                self.refused += 1
                writer.close()
                return
            self.connections += 1
            task = asyncio.ensure_future(self._connect(reader, writer))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

        server = await asyncio.start_server(accept, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        self._ready.set()
        try:
            await asyncio.wait_for(self._stop.wait(), self.lifetime_s)
        except asyncio.TimeoutError:
            pass
        server.close()
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()  # since 3.12 it waits for open connections: closed just above

    async def _connect(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        server_writer = None
        try:
            try:
                server_reader, server_writer = await asyncio.open_connection(*self.upstream)
            except OSError:
                return
            pipes = [
                asyncio.ensure_future(self._pipe(client_reader, server_writer, self.delay_s, "bytes_up")),
                asyncio.ensure_future(self._pipe(server_reader, client_writer, 0.0, "bytes_down")),
            ]
            try:
                await asyncio.wait(pipes, return_when=asyncio.FIRST_EXCEPTION)
            finally:  # a reset on either side, or stop(), ends the connection on both
                for pipe in pipes:
                    pipe.cancel()
                await asyncio.gather(*pipes, return_exceptions=True)
        finally:  # also when stop() cancels this while it is still connecting upstream
            for writer in (server_writer, client_writer):
                if writer is not None:
                    writer.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float, count: str) -> None:
        """reader -> writer, each chunk `delay` after it arrived; end of stream passed on as a
        half-close, so a client that shuts down its sending side still gets its answer."""
        loop = asyncio.get_running_loop()
        line: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def feed() -> None:
            try:
                while chunk := await reader.read(1 << 16):
                    line.put_nowait((loop.time() + delay, chunk))
            finally:  # end of stream, or a reset: the writer side ends too
                line.put_nowait((loop.time() + delay, b""))

        feeder = asyncio.ensure_future(feed())
        try:
            while True:
                due, chunk = await line.get()
                if (wait := due - loop.time()) > 0:
                    await asyncio.sleep(wait)
                if not chunk:
                    if writer.can_write_eof():
                        writer.write_eof()
                    return
                writer.write(chunk)
                setattr(self, count, getattr(self, count) + len(chunk))
                await writer.drain()
        finally:
            feeder.cancel()
            await asyncio.gather(feeder, return_exceptions=True)


@dataclass
class ProxyCounts:
    """What a latency_proxy() forwarded, filled in when it stops."""

    url: str
    connections: int = 0
    refused: int = 0
    bytes_up: int = 0
    bytes_down: int = 0


def _proxy_process(upstream: str, delay_s: float, max_connections: int, lifetime_s: float, pipe: Connection) -> None:
    proxy = LatencyProxy(upstream, delay_s, max_connections, lifetime_s).start()
    pipe.send(proxy.url)
    pipe.poll(lifetime_s)  # until the parent says stop (or dies: the pipe closes), at most lifetime_s
    proxy.stop()
    pipe.send({k: getattr(proxy, k) for k in ("connections", "refused", "bytes_up", "bytes_down")})


@contextmanager
def latency_proxy(
    upstream: str, delay_s: float = 0.02, max_connections: int = 100_000, lifetime_s: float = 900
) -> Iterator[ProxyCounts]:
    """A LatencyProxy in front of `upstream` (http://127.0.0.1:PORT, e.g. moto_server()'s URL);
    aim AWS_ENDPOINT_URL at the yielded `.url`; its counts are filled in on the way out, when
    it stops with every connection closed. It runs in a process of its own: in the caller's,
    it would wait for the GIL behind the very upload threads it delays, and add their CPU
    time to its latency."""
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    process = context.Process(target=_proxy_process, args=(upstream, delay_s, max_connections, lifetime_s, theirs), daemon=True)
    process.start()
    counts = None
    try:
        if not ours.poll(60):
            raise RuntimeError("latency proxy did not start")
        counts = ProxyCounts(ours.recv())
        yield counts
    finally:  # also when the caller's block raised: the proxy stops now, not after lifetime_s
        try:
            ours.send("stop")
            if counts is not None and ours.poll(30):
                for key, value in ours.recv().items():
                    setattr(counts, key, value)
        except (OSError, EOFError):
            pass  # the process is gone already
        ours.close()
        process.join(30)
        if process.is_alive():
            process.kill()
            process.join()
