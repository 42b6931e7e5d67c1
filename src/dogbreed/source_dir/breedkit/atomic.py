"""Atomic file writes: write a temporary file in the same folder, then os.replace it.

A reader (a concurrent tuning trial, a resumed run, SageMaker's checkpoint uploader) then
sees either the old file or the whole new one, never a partial write. os.replace is atomic
on POSIX when source and target are on the same filesystem, hence the same folder.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO


class _Recorded:
    """A file handle that remembers the first OSError a write met. torch.save turns a full
    disk or a file size limit into `RuntimeError: ... unexpected pos 5056 vs 4950`; the
    OSError (ENOSPC, EFBIG: what, and which file) is the one worth raising."""

    def __init__(self, handle: BinaryIO) -> None:
        self._handle = handle
        self.error: OSError | None = None

    def write(self, data: Any) -> int:
        try:
            return self._handle.write(data)
        except OSError as exc:
            self.error = self.error or exc
            raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self._handle, name)


def atomic_write(path: str | Path, write: Callable[[BinaryIO], Any]) -> Path:
    """Call write(handle) on a temp file beside `path`, fsync it, then rename it into place.
    A write the file system refused raises its OSError, naming `path`, whatever the writer
    made of it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    recorded = None
    try:
        with os.fdopen(fd, "wb") as handle:
            recorded = _Recorded(handle)
            write(recorded)  # type: ignore[arg-type]
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        refused = recorded.error if recorded is not None else None
        if refused is not None and refused is not exc:
            raise OSError(refused.errno, refused.strerror, str(path)) from exc
        raise
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    return atomic_write(path, lambda handle: handle.write(data))


def atomic_write_json(path: str | Path, value: Any) -> Path:
    return atomic_write_bytes(path, (json.dumps(value, indent=2) + "\n").encode())
