"""The file batch scoring writes: one row per image, CSV or JSON Lines, appended as it goes.

A row is what `predict` answers per image, plus the image's `key` (what it was when scored:
size and modification time of a file, size of an S3 object):
    {"image", "key", "top": [{"label", "index", "probability"}], "dog_probability", "is_dog"}
or, for an image that could not be scored, {"image", "key", "error"}.
CSV flattens `top` into label_1, probability_1, ... label_K, probability_K, so a spreadsheet
reads it as it is; JSON Lines keeps the row as above.

Each row is flushed as soon as it is written, so a killed run keeps every finished row (a
half-written last row is cut off when the file is opened again, with a note). Any other row
that is not of the shape below is refused with its line number, the file untouched. Opening an existing file
reads it: images whose row carries the same key are done and skipped, so a rerun with the
same output resumes; a changed file (new size or time) is scored again and its new row,
appended later, is the one that counts (`read_rows` keeps the last row per image).

One run writes a scores file at a time (`writing`: the kernel's flock on the file itself,
held for the whole run): two at once each read the file before the other wrote, scored
every image and appended it, so each image had two rows. `--restart` empties the file in
place, so the inode the lock is on stays the file.
"""

from __future__ import annotations

import csv
import errno
import io
import json
import math
import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dogbreed.errors import BusyError, DogbreedError, UsageError
from dogbreed.job_lock import lock_now

FORMATS = ("csv", "jsonl")
_SUFFIXES = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}


def format_of(path: Path, given: str | None = None) -> str:
    """csv or jsonl: `given` (--format), else from the file's suffix."""
    if given:
        if given not in FORMATS:
            raise UsageError(f"--format {given}: expected one of {', '.join(FORMATS)}")
        return given
    found = _SUFFIXES.get(path.suffix.lower())
    if found is None:
        raise UsageError(f"{path}: cannot tell the format from the suffix; name it .csv or .jsonl, or pass --format csv|jsonl")
    return found


def csv_header(top_k: int) -> list[str]:
    columns = ["image", "key"]
    for rank in range(1, top_k + 1):
        columns += [f"label_{rank}", f"probability_{rank}"]
    return [*columns, "dog_probability", "is_dog", "error"]


def _csv_line(row: dict[str, Any], top_k: int) -> list[str]:
    cells = [row["image"], row.get("key", "")]
    top = row.get("top") or []
    for rank in range(top_k):
        entry = top[rank] if rank < len(top) else None
        cells += [entry["label"], repr(entry["probability"])] if entry else ["", ""]
    dog = row.get("dog_probability")
    is_dog = row.get("is_dog")
    cells += ["" if dog is None else repr(dog), "" if is_dog is None else str(is_dog).lower(), row.get("error") or ""]
    return cells


def _from_csv(cells: dict[str, str]) -> dict[str, Any]:
    row: dict[str, Any] = {"image": cells["image"], "key": cells["key"]}
    if cells.get("error"):
        row["error"] = cells["error"]
        return row
    top, rank = [], 1
    while f"label_{rank}" in cells:
        if cells[f"label_{rank}"]:
            top.append({"label": cells[f"label_{rank}"], "probability": float(cells[f"probability_{rank}"])})
        rank += 1
    dog = cells.get("dog_probability") or None
    row.update(top=top, dog_probability=None if dog is None else float(dog))
    row["is_dog"] = {"true": True, "false": False}.get(cells.get("is_dog", ""))
    return row


def _records(data: bytes, fmt: str) -> tuple[list[tuple[int, str]], int]:
    """([(line number, text)] of the complete records, the byte offset where they end). A
    CSV record ends at a newline outside quotes (a quoted path may hold one); a JSON Lines
    record at any newline. What follows the last complete record is a half-written row."""
    records: list[tuple[int, str]] = []
    start = end = 0
    line_number = 1
    first_line = 1
    quotes = 0
    while True:
        newline = data.find(b"\n", end)
        if newline < 0:
            return records, start
        quotes += data.count(b'"', end, newline)
        end = newline + 1
        if fmt == "jsonl" or quotes % 2 == 0:
            records.append((first_line, data[start:end].decode("utf-8")))
            start, quotes, first_line = end, 0, line_number + 1
        line_number += 1


def _damaged(path: Path, line: int | None, what: str) -> UsageError:
    where = f"{path}:{line}" if line else str(path)
    return UsageError(
        f"{where}: {what}, not a row dogbreed transform writes; --restart to score every image again into it, "
        "or choose another --output"
    )


def _text(value: Any) -> bool:
    return isinstance(value, str)


def _probability(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_row(row: Any) -> str | None:
    """Why `row` is no row this module writes, or None (the shapes in the module docstring)."""
    if not isinstance(row, dict) or not _text(row.get("image")) or not row["image"]:
        return "no image named"
    if not _text(row.get("key", "")):
        return "a key that is not text"
    if "error" in row:
        return None if _text(row["error"]) and row["error"] else "an error that is not text"
    top = row.get("top")
    if not isinstance(top, list) or not all(
        isinstance(entry, dict) and _text(entry.get("label")) and _probability(entry.get("probability")) for entry in top
    ):
        return "labels or probabilities that are not a model's answer"
    if row.get("dog_probability") is not None and not _probability(row["dog_probability"]):
        return "a dog_probability that is not a probability"
    if row.get("is_dog") not in (True, False, None):
        return "an is_dog that is neither true nor false"
    return None


def _parse(path: Path, fmt: str, records: list[tuple[int, str]]) -> dict[str, dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    header: list[str] | None = None
    for number, text in records:
        if not text.strip():
            continue
        if fmt == "jsonl":
            try:
                row = json.loads(text)
            except ValueError:
                raise _damaged(path, number, "not JSON") from None
        else:
            cells = next(csv.reader([text]), [])
            if header is None:
                header = cells
                continue
            if len(cells) != len(header):
                raise _damaged(path, number, f"{len(cells)} cells where the header has {len(header)}")
            try:
                row = _from_csv(dict(zip(header, cells)))
            except (KeyError, ValueError):
                raise _damaged(path, number, "cells that are not a model's answer") from None
        problem = _check_row(row)
        if problem:
            raise _damaged(path, number, problem)
        rows[row["image"]] = row
    return rows


def read_rows(path: Path, fmt: str, notes: list[str] | None = None) -> list[dict[str, Any]]:
    """Every complete row of a scores file, the last one per image (in first-seen order).

    A half-written last row (a killed run) is cut off the file itself, so appending starts
    on a fresh line and that image is scored again; it is said in `notes`. Anything else that
    is no row of ours (a line of garbage, a row edited by hand, bytes that are not UTF-8)
    raises UsageError naming the line, and the file is left as it was."""
    if not path.exists():
        return []
    data = path.read_bytes()
    try:
        records, end = _records(data, fmt)
        rows = _parse(path, fmt, records)
    except UnicodeDecodeError:
        raise _damaged(path, None, "bytes that are not UTF-8 text") from None
    if data.find(b"\n", end) >= 0:
        # A kill cuts the last row only; a quote opened lines before the end and never closed
        # is a hand edit, and cutting there would lose every row after it.
        raise _damaged(path, data.count(b"\n", 0, end) + 1, "a quote that is never closed")
    if end != len(data):
        with path.open("r+b") as handle:
            handle.truncate(end)
        if notes is not None:
            notes.append(f"{path}: its last row was cut short (a killed run?); dropped it, and that image is scored again")
    return list(rows.values())


@contextmanager
def writing(path: Path) -> Iterator[None]:
    """Hold the scores file for one run (module docstring), or BusyError at once. A file this
    creates and the run leaves empty is removed again."""
    if path.is_dir():
        raise UsageError(f"--output {path} is a folder; give a file in it, e.g. --output {path / 'scores.csv'}")
    existed = path.exists()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    except OSError as exc:
        target = f" (a link to {os.readlink(path)})" if path.is_symlink() else ""
        raise DogbreedError(
            f"cannot write the scores file {path}{target}: {exc.strerror or exc}; choose another --output"
        ) from None
    try:
        try:
            locked = lock_now(fd)
        except OSError as exc:  # a filesystem without flock (some network mounts): unguarded, as before
            if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                raise
            locked = True
        if not locked:
            raise BusyError(f"{path} is being written by another transform; wait for it to end, or choose another --output")
        yield
    finally:
        if not existed and os.fstat(fd).st_size == 0:
            path.unlink(missing_ok=True)
        os.close(fd)


class ScoresFile:
    """Append-only writer of one scores file (see the module docstring)."""

    def __init__(self, path: Path, fmt: str, top_k: int, restart: bool = False) -> None:
        self.path = path
        self.fmt = fmt
        self.top_k = top_k
        if restart and path.exists():
            os.truncate(path, 0)  # in place: `writing` holds its lock on this inode
        self._check_header()
        self.notes: list[str] = []  # what reading the file found and mended, for the user
        self.existing = read_rows(path, fmt, self.notes)
        self._handle: Any = None

    def _check_header(self) -> None:
        if self.fmt != "csv" or not self.path.exists() or not self.path.stat().st_size:
            return
        with self.path.open("rb") as handle:
            line = handle.readline()
        if not line.endswith(b"\n"):
            return  # cut short in the header: read_rows drops it, and the header is written again
        first = next(csv.reader([line.decode("utf-8", "replace")]), [])
        if first != csv_header(self.top_k):
            labels = sum(1 for column in first if column.startswith("label_"))
            hint = f"pass --top-k {labels}" if labels and first == csv_header(labels) else "choose another --output"
            if line.lstrip().startswith(b"{"):
                hint = "it holds JSON Lines: pass --format jsonl, or choose another --output"
            raise UsageError(f"{self.path} has other columns than this run writes (top_k {self.top_k}); {hint}, or --restart")

    def done(self) -> dict[str, str]:
        """{image: key} of the rows already in the file."""
        return {row["image"]: str(row.get("key", "")) for row in self.existing}

    def pending(self, images: Sequence[Any]) -> tuple[list[Any], int, list[dict[str, str]]]:
        """(the images to score, how many the file already has, the error rows it has for
        those): an image is done when its row carries the same key (images: BatchImage)."""
        done = self.done()
        todo = [item for item in images if done.get(item.image) != item.key]
        keys = {item.image: item.key for item in images}
        earlier = [
            {"image": row["image"], "error": row["error"]}
            for row in self.existing
            if row.get("error") and row["image"] in keys and keys[row["image"]] == done[row["image"]]
        ]
        return todo, len(images) - len(todo), earlier

    def __enter__(self) -> ScoresFile:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fresh = not self.path.exists() or self.path.stat().st_size == 0
        self._handle = self.path.open("a", newline="", encoding="utf-8")
        if fresh and self.fmt == "csv":
            self._write_line(csv_header(self.top_k))
        return self

    def _write_line(self, cells: list[str]) -> None:
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerow(cells)
        self._handle.write(out.getvalue())

    def write(self, row: dict[str, Any]) -> None:
        if self.fmt == "csv":
            self._write_line(_csv_line(row, self.top_k))
        else:
            self._handle.write(json.dumps(row) + "\n")
        self._handle.flush()  # a killed run keeps this row

    def write_all(self, rows: Iterable[dict[str, Any]]) -> None:
        for row in rows:
            self.write(row)

    def __exit__(self, *exc: object) -> None:
        if self._handle is not None:
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._handle.close()
            self._handle = None
