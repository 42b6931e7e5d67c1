"""Unpack .zip / .tar / .tar.gz archives without trusting them.

Every entry's header is checked before anything is written: no absolute paths, no `..`,
no symlinks, hardlinks, device files or FIFOs, and the entry count and declared total size
within data.max_archive_files / data.max_archive_bytes. While writing, the bytes actually
produced are counted again, because a zip entry can lie about its size. Extraction goes
into a fresh folder that is deleted on any failure, so a refused archive leaves nothing.

No entry is written past the largest file ingest accepts (data.max_image_bytes: an archive
of photos has no use for a bigger member, and a manifest is far smaller). An entry whose
header declares more is skipped and comes back as a problem of that file while the rest
of the archive unpacks: one 6 GB entry of zeros in a 6 MB zip used to be written whole and
only then refused as a photo. Every other entry is held to its declared size as it
streams, so none outgrows the limit either; one whose data is not the size (or checksum) its
header declares lied, and is a problem of that file too: what was written of it is removed
and the rest unpacks (a zip's entries are read independently, from its central directory). A
tar that ends inside an entry was cut short, and what it lost cannot be listed: it is refused. The archive as a whole may unpack to at most 100 times its own size (photos barely compress; zeros do
1000:1) once it is past one largest file, and never past data.max_archive_bytes.
"""

from __future__ import annotations

import re
import shutil
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from dogbreed.errors import DogbreedError
from dogbreed.progress import NullReporter, Reporter
from dogbreed.regular_files import FileRefusedError, open_regular

_CHUNK = 1 << 20
_DRIVE = re.compile(r"^[A-Za-z]:")
_ENTRY_LIMIT = "data.max_image_bytes"  # the setting behind max_entry_bytes, named in problems
# Photos (JPEG, PNG) barely compress, so an archive of them unpacks to about its own size;
# a zip of zeros does 1000:1. Past this ratio (and past one largest file) it is a bomb.
_MAX_RATIO = 100


class ArchiveError(DogbreedError):
    """The archive is hostile, too large or corrupt; nothing was extracted."""


@dataclass(frozen=True)
class Entry:
    name: str  # safe relative posix path
    is_dir: bool
    size: int  # declared uncompressed size
    handle: object  # ZipInfo or TarInfo


# Magic bytes at offset 0 -> the tar compression tarfile opens it with ("r:gz" and so on).
_COMPRESSED_TAR = ((b"\x1f\x8b", "gz"), (b"BZh", "bz2"), (b"\xfd7zXZ\x00", "xz"))
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")
_TAR_BLOCK = 512


def _tar_header(block: bytes) -> bool:
    """A first block that is a tar header: 'ustar' magic (POSIX, GNU, pax), or an old v7
    header whose checksum adds up (the checksum field counts as spaces)."""
    if len(block) < _TAR_BLOCK or not block.strip(b"\x00"):
        return False
    if block[257:262] == b"ustar":
        return True
    try:
        declared = int(block[148:156].replace(b"\x00", b" ").strip() or b"-1", 8)
    except ValueError:
        return False
    return declared == sum(block[:148]) + 8 * 32 + sum(block[156:_TAR_BLOCK])


def archive_kind(path: Path) -> str | None:
    """'zip', 'tar', 'tar.gz', 'tar.bz2', 'tar.xz' or None, from the content, not the name.

    Read once and cheaply: the first 512 bytes (magic numbers, or a tar header), and for a
    zip with data before it (self-extracting) zipfile's look at the end of the file. Never a
    trial decompression: probing 200 MB of zeros as xz took minutes."""
    try:
        with open_regular(path) as handle:  # a FIFO or a device is no archive, and never read
            head = handle.read(_TAR_BLOCK)
    except (OSError, FileRefusedError):
        return None
    if head.startswith(_ZIP_MAGIC):
        return "zip"
    for magic, compression in _COMPRESSED_TAR:
        if head.startswith(magic):
            return f"tar.{compression}"
    if _tar_header(head):
        return "tar"
    try:
        return "zip" if zipfile.is_zipfile(path) else None
    except OSError:
        return None


def safe_name(raw: str) -> str:
    """The entry name as a relative posix path inside the target; ValueError when it escapes."""
    if "\x00" in raw:
        raise ValueError("has a NUL byte in its name")
    name = raw.replace("\\", "/")
    if name.startswith("/") or _DRIVE.match(name):
        raise ValueError("is an absolute path")
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise ValueError("climbs out of the target with '..'")
    return "/".join(parts)


class _BadEntry(ValueError):
    """An entry refused from its header; the message names it."""


# What to do about a link: `tar czf` and `zip -y` keep the links a photo folder often holds.
_LINK_FIX = "links are never unpacked; pack the files they point to (tar --dereference, or zip without -y)"


def _zip_entry(info: zipfile.ZipInfo) -> Entry:
    kind = stat.S_IFMT(info.external_attr >> 16)
    reason = None
    if kind == stat.S_IFLNK:
        reason = f"is a symlink ({_LINK_FIX})"
    elif kind and kind not in (stat.S_IFREG, stat.S_IFDIR):
        reason = "is a device file, FIFO or socket"
    elif info.flag_bits & 0x1:
        reason = "is encrypted"
    try:
        if reason:
            raise ValueError(reason)
        return Entry(safe_name(info.filename), info.is_dir() or kind == stat.S_IFDIR, info.file_size, info)
    except ValueError as exc:
        raise _BadEntry(f"entry {info.filename!r} {exc}") from None


def _tar_entry(member: tarfile.TarInfo) -> Entry:
    reason = None
    if member.issym():
        reason = f"is a symlink ({_LINK_FIX})"
    elif member.islnk():
        reason = f"is a hardlink ({_LINK_FIX})"
    elif member.ischr() or member.isblk():
        reason = "is a device file"
    elif member.isfifo():
        reason = "is a FIFO"
    elif not (member.isreg() or member.isdir()):
        reason = f"has unsupported tar type {member.type!r}"
    try:
        if reason:
            raise ValueError(reason)
        return Entry(safe_name(member.name), member.isdir(), member.size, member)
    except ValueError as exc:
        raise _BadEntry(f"entry {member.name!r} {exc}") from None


def _zip_entries(archive: zipfile.ZipFile) -> Iterator[Entry]:
    for info in archive.infolist():
        yield _zip_entry(info)


def _tar_entries(archive: tarfile.TarFile) -> Iterator[Entry]:
    # Iterating reads one header at a time, so a count bomb stops at the limit.
    for member in archive:
        yield _tar_entry(member)
    _check_tar_end(archive)


def _check_tar_end(archive: tarfile.TarFile) -> None:
    """Raise unless the tar ended where it should. tarfile stops without a word at the first
    header it cannot read past the first, so an entry whose size field lies, or a damaged
    block, silently cut off every entry after it (a smaller dataset, no error). A tar ends in
    zero blocks, or (from a few writers) in nothing; anything else at the end is damage."""
    archive.fileobj.seek(archive.offset)  # type: ignore[union-attr]
    if archive.fileobj.read(_TAR_BLOCK).strip(b"\0"):  # type: ignore[union-attr]
        raise tarfile.ReadError(f"an unreadable header at byte {archive.offset:,}, after which no entry can be listed")


@contextmanager
def _open(path: Path, kind: str) -> Iterator[tuple[object, Iterator[Entry]]]:
    if kind == "zip":
        with zipfile.ZipFile(path) as archive:
            yield archive, _zip_entries(archive)
    else:
        # The compression archive_kind found, not "r:*": no second round of trial decompressions.
        with tarfile.open(path, f"r:{kind.removeprefix('tar').lstrip('.')}") as archive:
            yield archive, _tar_entries(archive)


def _open_member(archive: object, entry: Entry) -> IO[bytes]:
    if isinstance(archive, zipfile.ZipFile):
        return archive.open(entry.handle)  # type: ignore[arg-type]
    stream = archive.extractfile(entry.handle)  # type: ignore[attr-defined]
    assert stream is not None  # regular files always have a stream
    return stream


class _Limits:
    """What one extraction may write: entries, each entry, the whole."""

    def __init__(self, where: str, archive_size: int, max_bytes: int, max_files: int, max_entry_bytes: int | None):
        self.where, self.max_bytes, self.max_files, self.max_entry_bytes = where, max_bytes, max_files, max_entry_bytes
        # The ratio guard applies past one largest file, so a zip of one photo never meets it.
        self.max_ratio_bytes = None if max_entry_bytes is None else max(_MAX_RATIO * archive_size, max_entry_bytes)
        self.archive_size = archive_size

    def check_total(self, total: int) -> None:
        if total > self.max_bytes:
            raise ArchiveError(
                f"{self.where}: refused: unpacks to more than data.max_archive_bytes={self.max_bytes} bytes; "
                "raise the limit if you trust this archive"
            )
        if self.max_ratio_bytes is not None and total > self.max_ratio_bytes:
            raise ArchiveError(
                f"{self.where}: refused: unpacks to more than {_MAX_RATIO} times its own {self.archive_size:,} bytes "
                "(a zip bomb: photos barely compress); if you trust it, unpack it yourself and ingest the folder"
            )

    def entry_problem(self, entry: Entry) -> dict[str, str] | None:
        """The problem row of an entry whose header declares more than one file may hold."""
        if self.max_entry_bytes is not None and entry.size > self.max_entry_bytes:
            return {
                "file": entry.name,
                "problem": f"too large: {entry.size:,} bytes > {_ENTRY_LIMIT} {self.max_entry_bytes:,}; refused before unpacking",
            }
        return None


def _lied(entry: Entry, detail: str) -> dict[str, str]:
    return {"file": entry.name, "problem": f"refused: {detail} (corrupt or hostile); not kept"}


def _plan(entries: Iterator[Entry], limits: _Limits, refused: list[dict[str, str]]) -> list[Entry]:
    """The entries to write; those too large by their header go to refused instead and
    count toward no total (they are never written)."""
    where = limits.where
    planned: list[Entry] = []
    count = total = 0
    try:
        for entry in entries:
            count += 1
            if count > limits.max_files:
                raise ArchiveError(
                    f"{where}: refused: more than data.max_archive_files={limits.max_files} entries; "
                    "raise the limit if you trust this archive"
                )
            problem = None if entry.is_dir else limits.entry_problem(entry)
            if problem:
                refused.append(problem)
                continue
            planned.append(entry)
            total += entry.size
            limits.check_total(total)
    except _BadEntry as exc:
        raise ArchiveError(f"{where}: refused: {exc}; nothing was extracted") from None
    except tarfile.ReadError as exc:
        # tarfile checks, before the next header, that the last entry's data is all there. A
        # tar that ends inside an entry was almost always cut short (an interrupted download or
        # copy), and the entries it lost cannot be listed: refused whole, unlike a zip's lying
        # entry, whose neighbours its central directory vouches for.
        if str(exc) != "unexpected end of data" or not planned or planned[-1] is not entry:
            raise ArchiveError(f"{where}: corrupt archive ({exc}); download or create it again") from None
        raise ArchiveError(
            f"{where}: cut short inside {entry.name!r} (its header declares {entry.size:,} bytes; the archive "
            "ends before them), as an interrupted download or copy leaves it; download or create it again"
        ) from None
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as exc:
        raise ArchiveError(f"{where}: corrupt archive ({exc}); download or create it again") from None
    return planned


def _write_entry(
    archive: object, entry: Entry, dest: Path, limits: _Limits, written: int, advance
) -> tuple[int, dict[str, str] | None]:
    """Stream one entry to dest: (bytes it produced, its problem row or None). Its header's
    size is at most the entry limit (_plan saw to that), and it is held to that size as it
    streams: an entry whose data is more (stopped before a byte past it is written), less, or
    fails the checksum its header declares lied, and what was written of it is removed. The
    bytes it produced still count toward the archive's total: lying entries make no bomb."""
    produced, problem = 0, None
    try:
        with _open_member(archive, entry) as source, open(dest, "wb") as out:
            while chunk := source.read(_CHUNK):
                produced += len(chunk)
                limits.check_total(written + produced)
                if produced > entry.size:
                    problem = _lied(entry, f"unpacks to more than the {entry.size:,} bytes its header declares")
                    break
                out.write(chunk)
                advance(len(chunk))
        if problem is None and produced < entry.size:
            problem = _lied(entry, f"unpacks to {produced:,} bytes, not the {entry.size:,} its header declares")
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        if not isinstance(archive, zipfile.ZipFile):
            raise  # a tar's entries share one stream: the archive is corrupt, not this entry
        # zipfile reads a zip entry only up to its declared size: a larger one fails its CRC.
        problem = _lied(entry, f"its data does not match its header: {exc}")
    if problem is not None:
        dest.unlink(missing_ok=True)
    return produced, problem


def extract_archive(
    archive_path: Path,
    target: Path,
    *,
    max_bytes: int,
    max_files: int,
    max_entry_bytes: int | None = None,
    reporter: Reporter | None = None,
    kind: str | None = None,
) -> list[dict[str, str]]:
    """Unpack into target, which must not exist yet. On any failure target is removed.
    kind: what archive_kind already said of this file (else it is sniffed here).
    max_entry_bytes (data.max_image_bytes): no entry is written past it; the entries refused
    for it, and those whose data is not what their header declares, are returned as problem
    rows ({file, problem}, file as named in the archive)."""
    reporter = reporter or NullReporter()
    where = archive_path.name
    kind = kind or archive_kind(archive_path)
    if kind is None:
        raise ArchiveError(f"{where}: not a zip or tar archive")
    limits = _Limits(where, archive_path.stat().st_size, max_bytes, max_files, max_entry_bytes)
    refused: list[dict[str, str]] = []
    target.mkdir(parents=True, exist_ok=False)
    root = target.resolve()
    try:
        with _open(archive_path, kind) as (archive, entries):
            planned = _plan(entries, limits, refused)
            written = 0
            with reporter.task(f"Extracting {where}", total=sum(e.size for e in planned)) as advance:
                for entry in planned:
                    if not entry.name:
                        continue
                    dest = root / entry.name
                    # Defence in depth: safe_name already ruled this out, and we never create links.
                    if not dest.resolve().is_relative_to(root):
                        raise ArchiveError(f"{where}: refused: entry {entry.name!r} resolves outside the target")
                    if entry.is_dir:
                        dest.mkdir(parents=True, exist_ok=True)
                        continue
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    produced, problem = _write_entry(archive, entry, dest, limits, written, advance)
                    written += produced
                    if problem is not None:
                        refused.append(problem)
    except ArchiveError:
        shutil.rmtree(target, ignore_errors=True)
        raise
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError, ValueError) as exc:
        shutil.rmtree(target, ignore_errors=True)
        raise ArchiveError(f"{where}: corrupt archive or entry ({exc}); nothing was kept") from None
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    return refused
