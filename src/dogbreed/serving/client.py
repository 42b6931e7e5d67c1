"""The local endpoint's HTTP client: /ping and /invocations over an injected transport.

The transport is one method, request(method, url, headers, body, timeout) -> HttpResponse, so
tests and other callers can hand in their own. The default keeps one keep-alive connection
per thread (predict invokes from a thread pool), which spares a TCP handshake per image.
No torch, no boto3: `dogbreed predict` stays light.
"""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

from dogbreed.serving import limits
from dogbreed.serving.errors import EndpointUnavailableError, InvocationError


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: Mapping[str, str]  # lower-case names
    body: bytes


class Transport(Protocol):
    def request(self, method: str, url: str, headers: Mapping[str, str], body: bytes | None, timeout: float) -> HttpResponse: ...


class HttpTransport:
    """http.client, one keep-alive connection per (thread, host, port). Thread-safe."""

    def __init__(self) -> None:
        self._local = threading.local()

    def _pool(self) -> dict[tuple[str, int], http.client.HTTPConnection]:
        if not hasattr(self._local, "connections"):
            self._local.connections = {}
        return self._local.connections

    def request(self, method: str, url: str, headers: Mapping[str, str], body: bytes | None, timeout: float) -> HttpResponse:
        parts = urlsplit(url)
        key = (parts.hostname or "127.0.0.1", parts.port or 80)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        pool = self._pool()
        for attempt in (1, 2):
            connection = pool.get(key)
            reused = connection is not None
            if connection is None:
                # http.client sets TCP_NODELAY on connect.
                connection = pool[key] = http.client.HTTPConnection(*key, timeout=timeout)
            elif connection.sock is not None:
                connection.sock.settimeout(timeout)
            try:
                connection.request(method, path, body=body, headers=dict(headers))
                response = connection.getresponse()
                data = response.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                pool.pop(key).close()
                if reused and attempt == 1:
                    continue  # the server closed an idle keep-alive connection: once more, fresh
                raise
            except BaseException:
                pool.pop(key).close()
                raise
            if response.will_close:
                pool.pop(key).close()
            return HttpResponse(response.status, {k.lower(): v for k, v in response.getheaders()}, data)
        raise AssertionError("unreachable")


def _error_fields(response: HttpResponse) -> tuple[str, str]:
    try:
        document = json.loads(response.body)
        return str(document.get("error", "error")), str(document.get("detail", document))
    except (ValueError, AttributeError):
        return "error", response.body.decode("utf-8", errors="replace")[:500] or f"HTTP {response.status}"


class EndpointClient:
    def __init__(self, url: str, name: str, transport: Transport | None = None) -> None:
        self.url = url.rstrip("/")
        self.name = name
        self.transport = transport or HttpTransport()

    def ping(self, timeout: float = 2.0) -> bool:
        try:
            return self.transport.request("GET", f"{self.url}/ping", {}, None, timeout).status == 200
        except (OSError, http.client.HTTPException):
            return False

    def invoke(self, body: bytes, content_type: str, accept: str = "application/json", timeout: float | None = None) -> bytes:
        # Read when called, not when defined: a test waits seconds for a frozen server, not 70.
        timeout = limits.CLIENT_TIMEOUT_S if timeout is None else timeout
        headers = {"Content-Type": content_type, "Accept": accept}
        try:
            response = self.transport.request("POST", f"{self.url}/invocations", headers, body, timeout)
        except TimeoutError:
            raise InvocationError(
                f"endpoint {self.name} did not answer within {timeout:g} s", 504, "client_timeout", "no answer"
            ) from None
        except (OSError, http.client.HTTPException) as exc:
            raise EndpointUnavailableError(
                f"endpoint {self.name} at {self.url} is not answering ({type(exc).__name__}: {exc}); "
                f"check `dogbreed status`, then redeploy with `dogbreed deploy --endpoint {self.name}`"
            ) from None
        if response.status != 200:
            error, detail = _error_fields(response)
            raise InvocationError(
                f"endpoint {self.name} refused the request: {detail} (HTTP {response.status} {error})",
                response.status,
                error,
                detail,
            )
        return response.body
