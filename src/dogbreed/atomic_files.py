"""The one way this tool replaces a file on the host: write beside it, then rename over it.

A reader (a browser refreshing report.html, `status` reading a job's status.json, a server's
state file, a store's manifest.json) sees the old file or the new one, never half of one; a
writer that fails or is interrupted leaves the target as it was and no temporary file.
The temporary name is unique per write, so two processes writing the same target at once
each rename a whole file (the last one wins). The job (source_dir) has its own copy in
breedkit/atomic.py: it may import nothing of dogbreed.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def replacing(target: Path) -> Iterator[Path]:
    """A fresh temporary path beside `target` to write; renamed over `target` when the block
    ends, removed when it raises. Creates the folder. The file gets the usual mode (umask)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes(target: Path, data: bytes) -> None:
    with replacing(target) as tmp:
        tmp.write_bytes(data)


def write_text(target: Path, text: str) -> None:
    write_bytes(target, text.encode("utf-8"))
