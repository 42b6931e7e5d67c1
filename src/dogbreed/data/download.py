"""Download a file over http(s) so that an interruption costs only what was not yet received.

Bytes go to `<file>.part`; after a dropped connection (or a killed process) the next attempt
asks for the rest with `Range: bytes=N-` and `If-Range`, so a server whose file changed in
between answers 200 with the whole new file instead of a mismatched tail. The result is
checked against the Content-Length (always) and data.sha256 (when set) before it is
renamed into place; a `<file>.sha256` note beside it lets the next ingest reuse it.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import re
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from dogbreed import __version__
from dogbreed.errors import DogbreedError
from dogbreed.progress import NullReporter, Reporter

_CHUNK = 1 << 20
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")
# Worth another try: the network or the server had a moment, not a verdict on the request.
_RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}


@dataclass(frozen=True)
class Downloaded:
    path: Path
    size: int
    sha256: str
    attempts: int  # HTTP requests made (0 when a finished download was reused)
    resumed: bool  # some attempt continued a partial file


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def download(
    url: str,
    dest: Path,
    *,
    sha256: str | None = None,
    reporter: Reporter | None = None,
    retries: int = 5,
    timeout: float = 60.0,
    backoff: float = 1.0,
    max_bytes: int | None = None,
) -> Downloaded:
    """Fetch url to dest, resuming a partial download left by an earlier attempt or run.

    max_bytes (data.max_archive_bytes) is enforced as the bytes arrive, not only from the
    Content-Length: a server that sends none, or lies, is cut off at the limit."""
    reporter = reporter or NullReporter()
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    state_path = dest.with_name(dest.name + ".part.json")  # validators of the partial bytes
    done_path = dest.with_name(dest.name + ".sha256")

    done = _read_json(done_path)
    if dest.is_file() and done.get("url") == url and done.get("size") == dest.stat().st_size:
        if sha256 is None or done.get("sha256") == sha256:
            return Downloaded(dest, done["size"], done["sha256"], attempts=0, resumed=False)
    dest.unlink(missing_ok=True)
    done_path.unlink(missing_ok=True)

    state = _read_json(state_path)
    if state.get("url") != url:
        part.unlink(missing_ok=True)
        state = {"url": url}
    attempts, resumed, failures = 0, False, 0
    while True:
        offset = part.stat().st_size if part.exists() else 0
        headers = {"User-Agent": f"dogbreed/{__version__}", "Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
            validator = state.get("etag") or state.get("last_modified")
            if validator:
                headers["If-Range"] = validator
        attempts += 1
        try:
            response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
        except urllib.error.HTTPError as exc:
            exc.close()
            if exc.code == 416 and offset:
                match = re.match(r"^bytes \*/(\d+)$", exc.headers.get("Content-Range", "") if exc.headers else "")
                if match and int(match.group(1)) == offset:
                    size = offset  # an earlier run received every byte but stopped before the rename
                    break
                # Our partial file is not a prefix of what the server has now: start over.
                part.unlink(missing_ok=True)
                continue
            if exc.code not in _RETRY_STATUS:
                raise DogbreedError(f"download {url}: HTTP {exc.code} {exc.reason}; check the URL (data.source)") from None
            failures = _failed(url, f"HTTP {exc.code}", failures, retries, backoff, part, reporter)
            continue
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            reason = getattr(exc, "reason", exc)
            failures = _failed(url, str(reason), failures, retries, backoff, part, reporter)
            continue

        with response:
            total = _expected_total(response, offset)
            if total is None and response.status == 206:
                part.unlink(missing_ok=True)  # a range we did not ask for: distrust it and restart
                failures = _failed(url, "unexpected Content-Range", failures, retries, backoff, part, reporter)
                continue
            if max_bytes is not None and total is not None and total > max_bytes:
                part.unlink(missing_ok=True)
                state_path.unlink(missing_ok=True)
                raise _too_large(url, max_bytes, f"its size is {total:,} bytes")
            if total is None:
                reporter.warn(f"{url}: the server sent no Content-Length, so the size cannot be verified")
            if response.status == 200:
                offset = 0  # the server sent the whole file (no Range support, or If-Range failed)
            else:
                resumed = True
            state.update(
                etag=_strong_etag(response.headers.get("ETag")),
                last_modified=response.headers.get("Last-Modified"),
                total=total,
            )
            state_path.write_text(json.dumps(state))
            try:
                with (
                    open(part, "ab" if offset else "wb") as out,
                    reporter.task(f"Downloading {dest.name}", total=total) as advance,
                ):
                    advance(offset)
                    received = offset
                    while chunk := response.read(_CHUNK):
                        received += len(chunk)
                        if max_bytes is not None and received > max_bytes:
                            raise _too_large(url, max_bytes, "it sent more")
                        out.write(chunk)
                        advance(len(chunk))
            except DownloadTooLargeError:
                part.unlink(missing_ok=True)
                state_path.unlink(missing_ok=True)
                raise
            except (OSError, http.client.HTTPException) as exc:
                failures = _failed(url, f"connection lost ({type(exc).__name__})", failures, retries, backoff, part, reporter)
                continue

        size = part.stat().st_size
        if total is not None and size < total:
            failures = _failed(url, f"got {size} of {total} bytes", failures, retries, backoff, part, reporter)
            continue
        if total is not None and size > total:
            part.unlink()
            raise DogbreedError(f"download {url}: got {size} bytes, Content-Length said {total}; run again")
        break

    digest = file_sha256(part)
    if sha256 is not None and digest != sha256:
        part.unlink(missing_ok=True)
        state_path.unlink(missing_ok=True)
        raise DogbreedError(
            f"download {url}: sha256 {digest} does not match data.sha256 {sha256}; "
            "check the URL and data.sha256 (the partial file was deleted)"
        )
    part.replace(dest)
    state_path.unlink(missing_ok=True)
    done_path.write_text(json.dumps({"url": url, "size": size, "sha256": digest}))
    return Downloaded(dest, size, digest, attempts=attempts, resumed=resumed)


class DownloadTooLargeError(DogbreedError):
    """The download is over data.max_archive_bytes; nothing of it is kept."""


def _too_large(url: str, max_bytes: int, why: str) -> DownloadTooLargeError:
    return DownloadTooLargeError(
        f"download {url}: refused: over data.max_archive_bytes={max_bytes:,} bytes ({why}); "
        "raise the limit if you trust this source"
    )


def _expected_total(response: http.client.HTTPResponse, offset: int) -> int | None:
    """The full file's size, from Content-Range (206) or Content-Length (200)."""
    if response.status == 206:
        match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
        if not match or int(match.group(1)) != offset or match.group(3) == "*":
            return None
        return int(match.group(3))
    length = response.headers.get("Content-Length")
    return int(length) if length and length.isdigit() else None


def _strong_etag(etag: str | None) -> str | None:
    # If-Range only works with a strong validator (RFC 9110 13.1.5); weak ones are skipped.
    return etag if etag and not etag.startswith("W/") else None


def _failed(url: str, reason: str, failures: int, retries: int, backoff: float, part: Path, reporter: Reporter) -> int:
    failures += 1
    if failures > retries:
        have = part.stat().st_size if part.exists() else 0
        raise DogbreedError(
            f"download {url}: {reason} after {failures} attempts ({have} bytes kept); run the same command again to resume"
        )
    wait = min(backoff * 2 ** (failures - 1), 30)
    reporter.warn(f"download {url}: {reason}; retry {failures} of {retries} in {wait:g} s")  # a wait is never silent
    time.sleep(wait)
    return failures
