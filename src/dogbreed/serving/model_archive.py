"""A model to serve, from model.tar.gz or a model dir, checked before a server is started.

A model.tar.gz may come from anywhere, so it is extracted with tarfile's "data" filter
(PEP 706: no absolute paths, no `..`, no links leading out, no devices) plus limits on
entries and total size against archive bombs. A model dir given as such is used in place.

A truncated or corrupt one (a copy cut short, a download that stopped) fails as gzip fails:
EOFError, zlib.error, BadGzipFile. EOFError must never reach the CLI as such: click takes it
for Ctrl-D at a prompt and reports "aborted", exit 130. `damaged()` says what it is instead.
"""

from __future__ import annotations

import gzip
import tarfile
import zlib
from pathlib import Path

from dogbreed.errors import DogbreedError, NotFoundError
from dogbreed.regular_files import FileRefusedError, check_regular

REQUIRED = ("model.pth", "classes.json", "hyperparameters.json", "code/inference.py")
MAX_MEMBERS = 10_000
MAX_UNPACKED_BYTES = 8 * 2**30

# What gzip raises on a file cut short (EOFError) or with bytes gone wrong (zlib.error, a bad CRC).
DAMAGED = (EOFError, zlib.error, gzip.BadGzipFile)


def damaged(where: object, exc: BaseException) -> DogbreedError:
    detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return DogbreedError(
        f"model {where}: the archive is truncated or corrupt ({detail}); train again or copy the complete model.tar.gz"
    )


def check_model_dir(path: Path) -> Path:
    missing = [name for name in REQUIRED if not (path / name).is_file()]
    if missing:
        raise DogbreedError(
            f"{path} is not a model dir: missing {', '.join(missing)}; "
            "deploy a model.tar.gz or model dir written by `dogbreed train`"
        )
    return path


def _safe_members(archive: tarfile.TarFile, source: Path) -> list[tarfile.TarInfo]:
    members = archive.getmembers()
    if len(members) > MAX_MEMBERS:
        raise DogbreedError(f"{source}: {len(members):,} entries, over the limit of {MAX_MEMBERS:,}; not a model archive")
    total = sum(member.size for member in members if member.isfile())
    if total > MAX_UNPACKED_BYTES:
        raise DogbreedError(f"{source} would unpack to {total:,} bytes, over {MAX_UNPACKED_BYTES:,}; refusing it")
    return members


def extract_archive(source: Path, dest: Path) -> Path:
    """Extract model.tar.gz into dest (created), refusing unsafe entries."""
    dest.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(source, "r:*") as archive:
            members = _safe_members(archive, source)
            archive.extractall(dest, members=members, filter="data")
    except DAMAGED as exc:  # before OSError: BadGzipFile is one
        raise damaged(source, exc) from None
    except (tarfile.TarError, OSError) as exc:  # FilterError is a TarError
        raise DogbreedError(f"cannot extract {source}: {exc}; is it a model.tar.gz from `dogbreed train`?") from None
    return dest


def local_model_path(model_uri: str) -> Path:
    """The local file or folder behind a model URI; S3 models need the sagemaker backend."""
    if model_uri.startswith("s3://"):
        raise DogbreedError(
            f"model {model_uri} is on S3 but the backend is local; download it first, or deploy with --backend sagemaker"
        )
    path = Path(model_uri.removeprefix("file://")).expanduser()
    if not path.exists():
        raise NotFoundError(f"model {path} not found; give --model a model.tar.gz or model dir, or train one first")
    return path.resolve()


def prepare_model_dir(model_uri: str, extract_to: Path) -> Path:
    """A model dir ready to serve: the dir itself, or the archive extracted into extract_to."""
    path = local_model_path(model_uri)
    if path.is_dir():
        return check_model_dir(path)
    try:
        check_regular(path)  # a FIFO or /dev/zero given as --model: refused, never read
    except FileRefusedError as exc:
        raise DogbreedError(f"model {path}: {exc.problem}; give a model.tar.gz or a model dir") from None
    try:
        is_tar = tarfile.is_tarfile(path)  # reads the first header: a file cut short there fails here
    except DAMAGED as exc:
        raise damaged(path, exc) from None
    if not is_tar:
        raise DogbreedError(f"model {path} is neither a model dir nor a .tar.gz archive")
    return check_model_dir(extract_archive(path, extract_to))
