"""The one gate before this tool reads a file someone handed it (a photo to ingest or predict,
a config file, a model archive, a source archive).

A name ending in .jpg can be a FIFO (open() blocks forever), a symlink to /dev/zero (read()
never ends), a socket, a folder, or a 3 GiB sparse file. So before any byte is read: stat
the path (stat never blocks) and accept only a regular file within the size limit; open it
without blocking and check the open descriptor again (fstat), so a file swapped between
the two looks is still caught. Refusals are FileRefusedError with a one-line `problem`, which
callers report per file: one bad file never stops, or hangs, a run. Bytes that are no local
file (an S3 object) meet the same size limit, in the same words, before any is fetched:
size_problem.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

from dogbreed.errors import DogbreedError

_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


class FileRefusedError(DogbreedError):
    """Not a regular file within its size limit; `problem` says which, without the path."""

    def __init__(self, path: Path | str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = str(path)
        self.problem = problem


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def _check(path: Path | str, info: os.stat_result, max_bytes: int | None, limit_name: str, linked: bool) -> None:
    if not stat.S_ISREG(info.st_mode):
        via = "a symlink to " if linked else ""
        raise FileRefusedError(path, f"not a regular file ({via}{_kind(info.st_mode)}); refused before reading")
    problem = size_problem(info.st_size, max_bytes, limit_name)
    if problem:
        raise FileRefusedError(path, problem)


def size_problem(size: int, max_bytes: int | None, limit_name: str = "the limit") -> str | None:
    """The refusal of something `size` bytes long over max_bytes, known before reading it: a
    file's stat, an S3 object's listed size or ContentLength. One wording for all of them."""
    if max_bytes is not None and size > max_bytes:
        return f"too large: {size:,} bytes > {limit_name} {max_bytes:,}; refused before reading"
    return None


def check_regular(path: Path | str, max_bytes: int | None = None, limit_name: str = "the limit") -> os.stat_result:
    """The stat of path if it is (or links to) a regular file of at most max_bytes; else
    FileRefusedError. A missing or unreadable path is FileRefusedError too."""
    try:
        linked = stat.S_ISLNK(os.lstat(path).st_mode)
        info = os.stat(path)
    except OSError as exc:
        raise FileRefusedError(path, f"unreadable: {exc.strerror or exc}") from None
    _check(path, info, max_bytes, limit_name, linked)
    return info


def open_regular(path: Path | str, max_bytes: int | None = None, limit_name: str = "the limit") -> BinaryIO:
    """path opened for binary reading, after check_regular; the caller closes it."""
    check_regular(path, max_bytes, limit_name)
    try:
        # O_NONBLOCK: should a FIFO have been swapped in since the stat, open returns at once.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    except OSError as exc:
        raise FileRefusedError(path, f"unreadable: {exc.strerror or exc}") from None
    try:
        _check(path, os.fstat(fd), max_bytes, limit_name, linked=False)
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular(path: Path | str, max_bytes: int, limit_name: str = "the limit") -> bytes:
    """The whole file, at most max_bytes of it, after the same checks (a file that grows
    while it is read is refused too)."""
    with open_regular(path, max_bytes, limit_name) as handle:
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise FileRefusedError(path, f"too large: more than {limit_name} {max_bytes:,} bytes; refused")
    return data
