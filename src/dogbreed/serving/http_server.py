"""The local endpoint's HTTP layer: SageMaker's container contract on the standard library.

    GET  /ping                               200 (empty) once the model is loaded, else 503
    POST /invocations                        the model's answer; errors as {"error", "detail"}
    POST /endpoints/{name}/invocations       the same, shaped as the SageMaker Runtime API

Each connection gets a thread (ThreadingHTTPServer, keep-alive); invocations run on a pool of
`workers` threads, which bounds concurrent model work and lets a request give up after the
60 s limit. Bodies over 6 MB are refused from Content-Length before any of the body is read
(and while reading a chunked one); the refusal is followed by a bounded "lingering close",
so a client still sending sees the 413 rather than a connection reset. Accepted sockets get
TCP_NODELAY: without it, Nagle's algorithm holding the body behind the headers until the
client's delayed ACK costs ~40 ms per request. `drain()` is the graceful stop.

A body has `body_timeout_s` (default: the 60 s invocation limit) to arrive in full, counted
from its first read, however slowly it trickles in; one that does not is answered 408 and
the connection closed (a client that announced 5 MB and sent 3 bytes otherwise held a
thread and got a bare close). A client that hangs up mid-request or mid-answer is one line
in the log, not a traceback: nothing went wrong on our side.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from dogbreed.serving import runtime_api
from dogbreed.serving.limits import INVOCATION_TIMEOUT_S, MAX_PAYLOAD_BYTES
from dogbreed.serving.model_handler import ModelHandler, Reply

log = logging.getLogger("dogbreed.serving")

LINGER_S = 2.0  # how long a refused client may keep sending before we close
LINGER_BYTES = 64 * 1024 * 1024
MAX_TRAILER_BYTES = 64 * 1024  # as much as http.client allows one header line


class HttpProblem(Exception):
    """A request we answer ourselves, before the model sees it."""

    def __init__(self, status: int, error: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.error, self.detail = status, error, detail


class TooLarge(HttpProblem):
    def __init__(self, detail: str) -> None:
        super().__init__(413, "payload_too_large", detail)


class BodyTimeout(HttpProblem):
    def __init__(self, limit_s: float, got: int, size: int | None) -> None:
        what = f"{got:,} of {size:,} bytes" if size is not None else f"{got:,} bytes of a chunked body"
        super().__init__(
            408,
            "request_timeout",
            f"the body did not arrive within {limit_s:g} s ({what} came); "
            "send the whole body at once, with a Content-Length that matches it",
        )


def _too_large_detail(size: int | None) -> str:
    what = f"{size:,} bytes" if size is not None else "the body"
    return f"{what} is over the {MAX_PAYLOAD_BYTES:,}-byte limit of an invocation; send a smaller image"


class EndpointServer(ThreadingHTTPServer):
    daemon_threads = True  # drain() decides when connections end, not the interpreter
    request_queue_size = 128

    def __init__(
        self,
        address: tuple[str, int],
        name: str,
        workers: int = 4,
        timeout_s: float = INVOCATION_TIMEOUT_S,
        log_file: str | None = None,
        body_timeout_s: float | None = None,
    ) -> None:
        super().__init__(address, InvocationHandler)
        self.name = name
        self.timeout_s = timeout_s
        # A body that has not arrived when the invocation's time is up can no longer be answered in time.
        self.body_timeout_s = timeout_s if body_timeout_s is None else body_timeout_s
        self.log_file = log_file
        self.model: ModelHandler | None = None
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="invoke")
        self.draining = False
        self._state = threading.Condition()
        self._in_flight = 0
        self._connections: set[socket.socket] = set()

    @property
    def port(self) -> int:
        return self.server_address[1]

    def get_request(self) -> tuple[socket.socket, object]:
        sock, address = super().get_request()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock, address

    def handle_error(self, request, client_address) -> None:
        log.exception("connection from %s failed", client_address)

    def track(self, sock: socket.socket, opened: bool) -> None:
        with self._state:
            (self._connections.add if opened else self._connections.discard)(sock)

    def begin(self) -> None:
        with self._state:
            self._in_flight += 1

    def end(self) -> None:
        with self._state:
            self._in_flight -= 1
            self._state.notify_all()

    def invoke(self, body: bytes, content_type: str | None, accept: str | None, started: float) -> Reply:
        assert self.model is not None
        future = self.pool.submit(self._timed_invoke, body, content_type, accept)
        try:
            return future.result(timeout=max(0.0, self.timeout_s - (time.monotonic() - started)))
        except FutureTimeout:
            # A running thread cannot be stopped; it finishes in the background, its answer dropped.
            future.cancel()
            log.error("invocation gave up after %.0f s", self.timeout_s)
            return Reply.error(504, "timeout", f"the model did not answer within {self.timeout_s:g} s")

    def _timed_invoke(self, body: bytes, content_type: str | None, accept: str | None) -> Reply:
        """The model's answer, with its own time in a Server-Timing header (W3C), so clients
        and the benchmark can tell the model's time from the server's."""
        started = time.perf_counter()
        reply = self.model.invoke(body, content_type, accept)
        timing = f"model;dur={(time.perf_counter() - started) * 1000:.3f}"
        return Reply(reply.status, reply.body, reply.content_type, {**reply.headers, "Server-Timing": timing})

    def drain(self, grace_s: float = INVOCATION_TIMEOUT_S + 5) -> bool:
        """Stop accepting, let in-flight requests finish (up to grace_s), close idle connections.

        Call from a thread other than the one running serve_forever(). True if nothing was cut off."""
        self.draining = True  # answers from now on carry Connection: close
        self.shutdown()
        self.server_close()  # close the listener now: new clients are refused, not left waiting
        with self._state:
            finished = self._state.wait_for(lambda: self._in_flight == 0, timeout=grace_s)
            idle = list(self._connections)
        for sock in idle:  # keep-alive connections waiting for a next request that will not come
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.pool.shutdown(wait=False, cancel_futures=True)
        return finished


class InvocationHandler(BaseHTTPRequestHandler):
    server: EndpointServer
    protocol_version = "HTTP/1.1"  # keep-alive: one connection serves many requests
    server_version = "dogbreed-endpoint"
    sys_version = ""
    timeout = INVOCATION_TIMEOUT_S  # socket timeout: idle keep-alive and slow headers (bodies: body_timeout_s)

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, opened=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, opened=False)

    def log_request(self, code="-", size="-") -> None:
        pass  # do_* log once per request with the timing instead

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            # The client hung up (a timeout of its own, Ctrl-C): there is no one left to answer,
            # and nothing wrong here, so one line instead of handle_error's traceback.
            self.close_connection = True
            command = getattr(self, "command", None) or "-"
            path = getattr(self, "path", None) or "-"
            log.info("%s client disconnected during %s %s", self.address_string(), command, path)

    def log_message(self, format: str, *args) -> None:
        log.info("%s %s", self.address_string(), format % args)

    # --- routes

    def do_GET(self) -> None:
        self.server.begin()
        try:
            if self.path == "/ping":
                self._send(Reply(200 if self.server.model is not None else 503, b"", "text/plain"))
            else:
                self._send(Reply.error(404, "not_found", f"no route GET {self.path}; try GET /ping"))
        finally:
            self.server.end()

    def do_POST(self) -> None:
        started = time.monotonic()
        self.server.begin()
        try:
            reply, size = self._post(started)
            self._send(reply)
            if reply.status in (413, 431) and size == "-":
                self._linger()  # refused part-read: let the client finish sending, then close
            log.info(
                "POST %s %d %.1fms in=%s out=%d",
                self.path,
                reply.status,
                (time.monotonic() - started) * 1000,
                size,
                len(reply.body),
            )
        finally:
            self.server.end()

    def handle_expect_100(self) -> bool:
        # Answer "Expect: 100-continue" with the 413 itself when the body would be too large.
        try:
            size = self._content_length()
            if size is not None and size > MAX_PAYLOAD_BYTES:
                raise TooLarge(_too_large_detail(size))
        except HttpProblem as problem:
            self._send(self._problem_reply(problem), close=True)
            return False
        return super().handle_expect_100()

    # --- the invocation itself

    def _post(self, started: float) -> tuple[Reply, int | str]:
        runtime_name = runtime_api.endpoint_in_path(self.path)
        if self.path.partition("?")[0] != "/invocations" and runtime_name is None:
            self.close_connection = True  # the body stays unread
            return Reply.error(404, "not_found", f"no route POST {self.path}; use POST /invocations"), "-"
        if runtime_name is not None and runtime_name != self.server.name:
            self.close_connection = True
            return runtime_api.endpoint_not_found(runtime_name), "-"
        if self.server.model is None:
            self.close_connection = True
            if runtime_name is not None:
                return runtime_api.model_not_ready(runtime_name), "-"
            return Reply.error(503, "loading", "the model is still loading; retry when GET /ping answers 200"), "-"
        try:
            body = self._read_body()
        except HttpProblem as problem:
            self.close_connection = True  # whatever is left of the body stays unread
            return self._problem_reply(problem), "-"
        reply = self.server.invoke(body, self.headers.get("Content-Type"), self.headers.get("Accept"), started)
        if runtime_name is not None:
            if reply.status == 200:
                reply = Reply(200, reply.body, reply.content_type, {**reply.headers, **runtime_api.success_headers()})
            else:
                reply = runtime_api.model_error(runtime_name, reply, self.server.log_file)
        return reply, len(body)

    def _problem_reply(self, problem: HttpProblem) -> Reply:
        if runtime_api.endpoint_in_path(self.path) is not None and isinstance(problem, TooLarge):
            return runtime_api.payload_too_large()
        return Reply.error(problem.status, problem.error, problem.detail)

    # --- bodies

    def _content_length(self) -> int | None:
        raw = self.headers.get("Content-Length")
        if raw is None:
            return None
        try:
            size = int(raw)
        except ValueError:
            size = -1
        if size < 0:
            raise HttpProblem(400, "bad_request", f"Content-Length {raw!r} is not a byte count")
        return size

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        size = self._content_length()
        if size is None:
            raise HttpProblem(411, "length_required", "send a Content-Length header (or a chunked body)")
        if size > MAX_PAYLOAD_BYTES:
            raise TooLarge(_too_large_detail(size))
        body = self._read_exactly(size, self._body_deadline(), size)
        if len(body) < size:
            raise HttpProblem(400, "bad_request", f"the body ended after {len(body):,} of {size:,} bytes")
        return body

    def _body_deadline(self) -> float:
        return time.monotonic() + self.server.body_timeout_s

    def _await(self, deadline: float, got: int, size: int | None) -> None:
        """Give the next read only the body's time left: a per-read timeout alone lets a client
        that sends a byte now and then hold the connection for ever."""
        left = deadline - time.monotonic()
        if left <= 0:
            raise BodyTimeout(self.server.body_timeout_s, got, size)
        self.connection.settimeout(left)

    def _read_exactly(self, count: int, deadline: float, size: int | None, got: int = 0) -> bytes:
        """count bytes of the body, fewer if the client closes; BodyTimeout past the deadline."""
        parts, seen = [], 0
        try:
            while seen < count:
                self._await(deadline, got + seen, size)
                part = self.rfile.read1(min(count - seen, 1 << 20))
                if not part:
                    break
                parts.append(part)
                seen += len(part)
        except TimeoutError:
            raise BodyTimeout(self.server.body_timeout_s, got + seen, size) from None
        finally:
            self.connection.settimeout(self.timeout)  # back to the idle limit, for the answer and keep-alive
        return b"".join(parts)

    def _readline_by(self, deadline: float, got: int, limit: int) -> bytes:
        try:
            self._await(deadline, got, None)
            return self.rfile.readline(limit)
        except TimeoutError:
            raise BodyTimeout(self.server.body_timeout_s, got, None) from None
        finally:
            self.connection.settimeout(self.timeout)

    def _read_chunked(self) -> bytes:
        chunks, total = [], 0
        deadline = self._body_deadline()
        while True:
            line = self._readline_by(deadline, total, 1024)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise HttpProblem(400, "bad_request", f"malformed chunk size line {line[:40]!r}") from None
            if size < 0:
                raise HttpProblem(400, "bad_request", f"malformed chunk size line {line[:40]!r}")
            if size == 0:
                break
            total += size
            if total > MAX_PAYLOAD_BYTES:
                raise TooLarge(_too_large_detail(None))
            chunk = self._read_exactly(size, deadline, None, total - size)
            if len(chunk) < size or self._readline_by(deadline, total, 3) not in (b"\r\n", b"\n"):
                raise HttpProblem(400, "bad_request", "a chunk ended early or lacks its CRLF")
            chunks.append(chunk)
        self._skip_trailers(deadline, total)
        return b"".join(chunks)

    def _skip_trailers(self, deadline: float, got: int) -> None:
        """Trailer fields are nothing we use, but a client may send them: read and drop at
        most MAX_TRAILER_BYTES, then refuse (unbounded, they kept a worker reading forever)."""
        seen = 0
        while True:
            line = self._readline_by(deadline, got, MAX_TRAILER_BYTES + 1 - seen)
            if line in (b"\r\n", b"\n", b""):
                return
            seen += len(line)
            if seen > MAX_TRAILER_BYTES:
                raise HttpProblem(431, "trailers_too_large", f"chunked trailers over {MAX_TRAILER_BYTES:,} bytes")

    def _linger(self) -> None:
        """Read and drop what a refused client still sends, for a bounded time and size."""
        deadline = time.monotonic() + LINGER_S
        try:
            self.connection.shutdown(socket.SHUT_WR)
            self.connection.settimeout(0.25)
            seen = 0
            while seen < LINGER_BYTES and time.monotonic() < deadline:
                chunk = self.rfile.read1(65536)
                if not chunk:
                    break
                seen += len(chunk)
        except OSError:
            pass

    # --- responses

    def _send(self, reply: Reply, close: bool = False) -> None:
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        for key, value in reply.headers.items():
            self.send_header(key, value)
        if close or self.close_connection or self.server.draining:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if reply.body:
            self.wfile.write(reply.body)
