"""Turn SOURCE (a folder, an archive or an http(s) URL) into a local folder of photos.

Downloads and extractions live in the workspace (downloads/<key>/) and are reused by the
next ingest of the same source: a finished download is kept with its sha256, an extraction
is marked done only after its last byte, so an interrupted one is redone, never half-used.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import shutil
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from dogbreed.config.schema import DataConfig
from dogbreed.data.archives import archive_kind, extract_archive
from dogbreed.data.download import download
from dogbreed.errors import UsageError
from dogbreed.progress import NullReporter, Reporter
from dogbreed.regular_files import check_regular

_ARCHIVE_SUFFIXES = (".tar.gz", ".tar.bz2", ".tar.xz", ".tgz", ".tbz2", ".txz", ".zip", ".tar")


@dataclass(frozen=True)
class LocalSource:
    given: str  # SOURCE exactly as the user wrote it (recorded in the manifest)
    name: str  # the dataset's name: "dogs" for examples/dogs, "dogImages" for the URL
    kind: str  # folder | archive | url
    folder: Path  # where the photos are on this machine
    # Archive entries not unpacked (over data.max_image_bytes): problem rows {file, problem}.
    problems: tuple[dict[str, str], ...] = ()


def is_url(source: str) -> bool:
    return source.lower().startswith(("http://", "https://"))


def dataset_name(source: str) -> str:
    """A name for the dataset from its source: the last path segment without archive suffixes."""
    if is_url(source):
        segment = urllib.parse.unquote(urllib.parse.urlsplit(source).path.rstrip("/").rsplit("/", 1)[-1])
    else:
        segment = Path(source).expanduser().resolve().name
    for suffix in _ARCHIVE_SUFFIXES:
        if segment.lower().endswith(suffix):
            segment = segment[: -len(suffix)]
            break
    return re.sub(r"[^A-Za-z0-9._-]+", "-", segment).strip("-.") or "dataset"


def _key(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _extract_once(
    archive: Path, kind: str, work: Path, identity: dict, data: DataConfig, reporter: Reporter
) -> tuple[Path, tuple[dict[str, str], ...]]:
    """work/extracted, unpacked from archive unless the same archive was unpacked before under
    the same limits, and the entries refused while unpacking (kept in the marker, so a reuse
    reports them again). A failed extraction leaves nothing in work that it made."""
    target, marker = work / "extracted", work / "extracted.done"
    limits = {"max_entry_bytes": data.max_image_bytes, "max_bytes": data.max_archive_bytes}
    try:
        done = json.loads(marker.read_text())
        if done["archive"] == identity and done["limits"] == limits and target.is_dir():
            return target, tuple(done["refused"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    marker.unlink(missing_ok=True)
    shutil.rmtree(target, ignore_errors=True)
    staging = work / "extracting"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        refused = extract_archive(
            archive,
            staging,
            max_bytes=data.max_archive_bytes,
            max_files=data.max_archive_files,
            max_entry_bytes=data.max_image_bytes,
            reporter=reporter,
            kind=kind,
        )
    except BaseException:
        # extract_archive removed staging; work itself goes too when nothing else is in it
        # (a local archive's folder), so a refused archive leaves no empty folder behind.
        with contextlib.suppress(OSError):
            work.rmdir()
        raise
    staging.rename(target)
    marker.write_text(json.dumps({"archive": identity, "limits": limits, "refused": refused}))
    return target, tuple(refused)


def resolve_source(source: str, downloads: Path, data: DataConfig, reporter: Reporter | None = None) -> LocalSource:
    """Download and/or unpack as needed; raises UsageError for a source that cannot be one."""
    reporter = reporter or NullReporter()
    name = dataset_name(source)
    if is_url(source):
        work = downloads / _key(source)
        filename = urllib.parse.unquote(urllib.parse.urlsplit(source).path.rstrip("/").rsplit("/", 1)[-1]) or "download"
        target = work / re.sub(r"[^A-Za-z0-9._-]+", "-", filename)
        fetched = download(source, target, sha256=data.sha256, reporter=reporter, max_bytes=data.max_archive_bytes)
        kind = archive_kind(fetched.path)
        if kind is None:
            raise UsageError(f"{source}: the download is not a zip or tar archive; point data.source at one")
        folder, problems = _extract_once(fetched.path, kind, work, {"sha256": fetched.sha256}, data, reporter)
        return LocalSource(source, name, "url", folder, problems)
    if "://" in source:
        raise UsageError(f"{source}: unsupported source; give a folder, a .zip/.tar/.tar.gz archive or an http(s) URL")
    path = Path(source).expanduser()
    if path.is_dir():
        return LocalSource(source, name, "folder", path.resolve())
    if not path.exists():
        raise UsageError(f"{source}: no such file or folder; give a folder, an archive or an http(s) URL")
    check_regular(path)  # a FIFO or a device named .tar: refused by name, never opened
    kind = archive_kind(path)
    if kind is None:
        raise UsageError(f"{source}: not a folder or a zip/tar archive")
    resolved = path.resolve()
    stat = resolved.stat()
    work = downloads / "archives" / _key(str(resolved))
    identity = {"path": str(resolved), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    folder, problems = _extract_once(resolved, kind, work, identity, data, reporter)
    return LocalSource(source, name, "archive", folder, problems)
