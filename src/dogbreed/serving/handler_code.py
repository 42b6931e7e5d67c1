"""Whose code a model would run: this dogbreed's handler, or someone else's.

A model's code/inference.py is imported by the server that serves it (SageMaker's contract,
which the local endpoint keeps), so a model.tar.gz from anywhere is code from anywhere: a
line appended to its inference.py runs at deploy. Models this tool trained carry a verbatim
copy of the installed package's handler (source_dir/inference.py and breedkit/), so the
model's code/ is compared file by file, by sha256, with the installed package's files. The
reference digests are computed from the installed package itself, never read from the
archive. Any difference (another version, an edited or added file, a link) needs the user
to vouch for it with --trust-code.

Byte-code in a model's code/ counts as a difference: Python would load a __pycache__/*.pyc
instead of the source it claims to match. The server never writes any there (ModelHandler
imports with sys.dont_write_bytecode), so serving a model dir in place keeps it clean.

A gzip archive is decompressed by gzip.GzipFile, read to its end, not by tarfile's stream
mode: that one takes a file cut short for a shorter archive, silently, so a truncated
model.tar.gz passed (or had its code/ "missing") and would have been uploaded as it was.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import posixpath
import stat
import tarfile
from functools import cache
from pathlib import Path
from typing import BinaryIO

from dogbreed.errors import DogbreedError, UsageError
from dogbreed.jobspec import INFERENCE_ENTRY, SOURCE_DIR
from dogbreed.regular_files import FileRefusedError, open_regular
from dogbreed.serving.model_archive import DAMAGED, damaged

CODE_DIR = "code"
PACKAGE = "breedkit"
_MAX_FILE_BYTES = 16 * 2**20  # a handler module is kilobytes; a huge one is not ours anyway
_SHOWN = 3


class UntrustedCodeError(UsageError):
    """The model's code/ is not this dogbreed's handler and --trust-code was not given."""


def _is_digest(value: str) -> bool:
    return len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def _bytecode(relative: str) -> bool:
    return "__pycache__" in relative.split("/") or relative.endswith((".pyc", ".pyo"))


def _digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open_regular(path, _MAX_FILE_BYTES, "the handler file limit") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _tree(root: Path, skip_bytecode: bool = False) -> dict[str, str]:
    """relative posix path -> sha256 (or a reason it cannot be ours) of every file below root;
    byte-code only when skip_bytecode (the installed package's own caches)."""
    found: dict[str, str] = {}
    for current, dirs, files in os.walk(root, followlinks=False):
        base = Path(current)
        for name in [*files, *(d for d in dirs if (base / d).is_symlink())]:
            path = base / name
            relative = path.relative_to(root).as_posix()
            if skip_bytecode and _bytecode(relative):
                continue
            if stat.S_ISLNK(os.lstat(path).st_mode):
                found[relative] = "a link"
                continue
            try:
                found[relative] = _digest(path)
            except FileRefusedError as exc:
                found[relative] = exc.problem
    return found


@cache
def installed_handler() -> dict[str, str]:
    """The digests of the handler files of the installed dogbreed, as train.py copies them."""
    files = {INFERENCE_ENTRY: _digest(SOURCE_DIR / INFERENCE_ENTRY)}
    tree = _tree(SOURCE_DIR / PACKAGE, skip_bytecode=True)
    files.update({f"{PACKAGE}/{name}": digest for name, digest in tree.items()})
    return files


def _member_digest(archive: tarfile.TarFile, member: tarfile.TarInfo) -> str:
    """sha256 of one archive member, or why it cannot be a file of ours."""
    if member.issym() or member.islnk():
        return "a link"
    if not member.isfile():
        return "not a regular file"
    if member.size > _MAX_FILE_BYTES:
        return f"too large: {member.size:,} bytes"
    handle = archive.extractfile(member)
    digest = hashlib.sha256()
    while handle is not None and (chunk := handle.read(1 << 20)):
        digest.update(chunk)
    return digest.hexdigest()


def archive_code(stream: BinaryIO, where: str) -> dict[str, str]:
    """relative path below code/ -> sha256 (or a reason it cannot be ours) of every entry of
    a model.tar.gz read as a stream: a file or an S3 object's body, read once, front to
    back, with nothing extracted. Paths are normalised as extraction would place them (a
    later entry of the same name replaces an earlier one, as it would on disk)."""
    found: dict[str, str] = {}
    try:
        unzipped = _gunzipped(stream)
        with tarfile.open(fileobj=unzipped or stream, mode="r|" if unzipped else "r|*") as archive:
            for member in archive:
                name = posixpath.normpath(member.name.lstrip("/"))
                if not name.startswith(f"{CODE_DIR}/") or member.isdir():
                    continue
                found[name[len(CODE_DIR) + 1 :]] = _member_digest(archive, member)
        # tarfile stops at the end-of-archive blocks; the rest (padding, gzip's CRC and length)
        # is what tells a complete file from one cut short there.
        while unzipped is not None and unzipped.read(1 << 20):
            pass
    except DAMAGED as exc:  # before OSError: BadGzipFile is one
        raise damaged(where, exc) from None
    except (tarfile.TarError, OSError) as exc:
        raise DogbreedError(
            f"model {where} is not a readable model.tar.gz ({exc}); deploy one written by `dogbreed train`"
        ) from None
    return found


def _gunzipped(stream: BinaryIO) -> gzip.GzipFile | None:
    """The stream through GzipFile when it starts as gzip does (and can be rewound after the
    look); None for anything else, left to tarfile's own detection."""
    if not stream.seekable():
        return None
    start = stream.tell()
    magic = stream.read(2)
    stream.seek(start)
    return gzip.GzipFile(fileobj=stream, mode="rb") if magic == b"\x1f\x8b" else None


def code_differences(model_dir: Path) -> list[str]:
    """How the model's code/ differs from the installed handler; [] when it is the same."""
    code = Path(model_dir) / CODE_DIR
    return differences(_tree(code) if code.is_dir() else {})


def differences(theirs: dict[str, str]) -> list[str]:
    """How a model's code/ (relative path -> digest, from a folder or an archive) differs
    from the installed handler. The most telling first: files that are no files, edited
    files, added files, then missing ones (an older or newer version)."""
    ours = installed_handler()
    problems: list[tuple[int, str]] = []
    for name in sorted(set(theirs) | set(ours)):
        where, found = f"{CODE_DIR}/{name}", theirs.get(name)
        if found is not None and not _is_digest(found):
            problems.append((0, f"{where} is {found}"))  # a link, a FIFO, a huge file: never ours
        elif found is not None and name in ours and found != ours[name]:
            problems.append((1, f"{where} differs from this dogbreed's"))
        elif name not in ours:
            problems.append((2, f"{where} is not part of dogbreed's handler"))
        elif found is None:
            problems.append((3, f"{where} is missing"))
    return [problem for _, problem in sorted(problems)]


def check_handler_code(model_dir: Path, model_uri: str, trusted: bool) -> list[str]:
    """The differences, when trusted; UntrustedCodeError naming them when not."""
    return _vouched(code_differences(model_dir), model_uri, trusted)


def check_archive_code(stream: BinaryIO, model_uri: str, trusted: bool) -> list[str]:
    """check_handler_code for a model.tar.gz that is not extracted here (SageMaker serves it):
    the same comparison, read from the archive's stream."""
    return _vouched(differences(archive_code(stream, model_uri)), model_uri, trusted)


def _vouched(problems: list[str], model_uri: str, trusted: bool) -> list[str]:
    if problems and not trusted:
        more = f" and {len(problems) - _SHOWN} more" if len(problems) > _SHOWN else ""
        raise UntrustedCodeError(
            f"model {model_uri}: its code/ is not the handler of this dogbreed ({'; '.join(problems[:_SHOWN])}{more}), "
            "and serving it runs that code on this machine; use a model trained by this version, "
            "or pass --trust-code if you trust where it came from"
        )
    return problems
