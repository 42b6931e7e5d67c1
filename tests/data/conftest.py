"""Builders for the data layer's tests and the ingest workflow's (tests/workflows): odd images,
dogImages-style archives, and a real HTTP server."""

from __future__ import annotations

import hashlib
import http.server
import io
import re
import shutil
import socket
import threading
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
DOGS = REPO / "examples" / "dogs"


def photos(folder: str | None = None) -> list[Path]:
    """Real photos from the vendored sample, sorted (a folder's, or all of them)."""
    base = DOGS / folder if folder else DOGS
    return sorted(base.rglob("*.jpg"))


def image_bytes(mode: str = "RGB", size: tuple[int, int] = (96, 80), fmt: str = "PNG", **save) -> bytes:
    """A small synthetic image with some structure (so JPEG is not trivially tiny)."""
    base = Image.linear_gradient("L").resize(size)
    image = Image.merge("RGB", (base, base.rotate(90), base.transpose(Image.Transpose.FLIP_LEFT_RIGHT)))
    if mode == "P":
        image = image.quantize(16)
    elif mode != "RGB":
        image = image.convert(mode)
    out = io.BytesIO()
    image.save(out, format=fmt, **save)
    return out.getvalue()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def tree(root: Path) -> set[str]:
    """Every path below root, relative: to prove nothing appeared where it should not."""
    return {p.relative_to(root).as_posix() for p in root.rglob("*")}


def make_dogimages(dest: Path, breeds: int = 4, wrapper: str | None = "dogImages") -> Path:
    """A dogImages-layout copy of the vendored photos: [wrapper/]train|valid|test/NNN.Breed/.
    Per breed 10 photos: 6 train, 2 valid, 2 test."""
    root = dest / wrapper if wrapper else dest
    folders = sorted(p.name for p in DOGS.iterdir())[:breeds]
    for number, folder in enumerate(folders, start=1):
        breed = folder.split("-", 1)[1]
        class_folder = f"{number:03d}.{breed[0].upper()}{breed[1:]}"
        for i, photo in enumerate(photos(folder)):
            split = "train" if i < 6 else "valid" if i < 8 else "test"
            target = root / split / class_folder / f"{breed}_{i:05d}.jpg"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(photo, target)
    return root


def zip_folder(folder: Path, archive: Path, arc_root: str | None = None) -> Path:
    """Zip folder so entries start with arc_root/ (default: the folder's name)."""
    arc_root = folder.name if arc_root is None else arc_root
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.rglob("*")):
            name = "/".join(filter(None, [arc_root, path.relative_to(folder).as_posix()]))
            zf.write(path, name)
    return archive


@dataclass
class FileServer:
    """A real HTTP server on 127.0.0.1 serving bytes, with Range/If-Range support, that can
    drop the connection part-way through a response to simulate a network failure."""

    files: dict[str, bytes]
    url: str = ""
    requests: list[dict] = field(default_factory=list)
    # path -> bytes to send before cutting the connection, one entry per upcoming GET
    drops: dict[str, list[int]] = field(default_factory=dict)
    ranges: bool = True
    etags: bool = True
    status: dict[str, int] = field(default_factory=dict)  # path -> forced error status

    def etag(self, path: str) -> str:
        return '"' + sha256(self.files[path])[:16] + '"'

    def bytes_sent(self, path: str) -> int:
        return sum(r["sent"] for r in self.requests if r["path"] == path)


def _handler(server: FileServer):
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep test output clean
            pass

        def do_GET(self):
            record = {"path": self.path, "range": self.headers.get("Range"), "if_range": self.headers.get("If-Range"), "sent": 0}
            server.requests.append(record)
            if self.path in server.status:
                self.send_error(server.status[self.path])
                return
            body = server.files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            start, status = 0, 200
            match = re.match(r"bytes=(\d+)-$", self.headers.get("Range") or "")
            validator_ok = self.headers.get("If-Range") in (None, server.etag(self.path))
            if server.ranges and match and validator_ok:
                start = int(match.group(1))
                if start >= len(body):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(body)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                status = 206
            self.send_response(status)
            self.send_header("Content-Type", "application/zip")
            self.send_header("Content-Length", str(len(body) - start))
            if server.etags:
                self.send_header("ETag", server.etag(self.path))
            if server.ranges:
                self.send_header("Accept-Ranges", "bytes")
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            self.end_headers()
            plan = server.drops.get(self.path)
            cut = plan.pop(0) if plan else None
            payload = body[start:] if cut is None else body[start : start + cut]
            self.wfile.write(payload)
            self.wfile.flush()
            record["sent"] = len(payload)
            if cut is not None:
                # Drop the connection mid-body: the client sees fewer bytes than Content-Length.
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)

    return Handler


@pytest.fixture
def file_server():
    """Start a FileServer on 127.0.0.1 for one test and always stop it."""
    server = FileServer(files={})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(server))
    server.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)
