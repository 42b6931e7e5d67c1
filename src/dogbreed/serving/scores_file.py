"""The file batch scoring writes: one row per image, CSV or JSON Lines, appended as it goes.

A row is what `predict` answers per image, plus the image's `key` (what it was when scored:
size and modification time of a file, size of an S3 object):
    {"image", "key", "top": [{"label", "index", "probability"}], "dog_probability", "is_dog"}
or, for an image that could not be scored, {"image", "key", "error"}.
CSV flattens `top` into label_1, probability_1, ... label_K, probability_K, so a spreadsheet
reads it as it is; JSON Lines keeps the row as above.

Each row is flushed as soon as it is written, so a killed run keeps every finished row (a
half-written last line is cut off when the file is opened again). Opening an existing file
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
import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dogbreed.errors import BusyError, UsageError
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


def _complete_text(path: Path) -> str:
    """The file's text up to its last newline; a half-written last line (a killed run) is cut
    off the file itself, so appending starts on a fresh line."""
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    if end != len(data):
        with path.open("r+b") as handle:
            handle.truncate(end)
    return data[:end].decode("utf-8")


def read_rows(path: Path, fmt: str) -> list[dict[str, Any]]:
    """Every complete row of a scores file, the last one per image (in first-seen order)."""
    text = _complete_text(path) if path.exists() else ""
    rows: dict[str, dict[str, Any]] = {}
    if fmt == "jsonl":
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                rows[row["image"]] = row
            except (ValueError, KeyError, TypeError):
                raise UsageError(
                    f"{path}:{number}: not a row of dogbreed transform; choose another --output, or --restart to replace it"
                ) from None
    else:
        reader = csv.DictReader(io.StringIO(text))
        for cells in reader:
            if None in cells or "image" not in cells:
                raise UsageError(
                    f"{path}: not written by dogbreed transform; choose another --output, or --restart to replace it"
                )
            rows[cells["image"]] = _from_csv(cells)
    return list(rows.values())


@contextmanager
def writing(path: Path) -> Iterator[None]:
    """Hold the scores file for one run (module docstring), or BusyError at once. A file this
    creates and the run leaves empty is removed again."""
    path.parent.mkdir(parents=True, exist_ok=True)
    existed = path.exists()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
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
        self.existing = read_rows(path, fmt)
        self._handle: Any = None

    def _check_header(self) -> None:
        if self.fmt != "csv" or not self.path.exists() or not self.path.stat().st_size:
            return
        with self.path.open(newline="", encoding="utf-8") as handle:
            first = next(csv.reader(handle), [])
        if first != csv_header(self.top_k):
            labels = sum(1 for column in first if column.startswith("label_"))
            hint = f"pass --top-k {labels}" if labels and first == csv_header(labels) else "choose another --output"
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
