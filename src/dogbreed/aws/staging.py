"""What must be on S3 before a job or model can use it: the training package and local files.

The SDK would tar `source_dir` and upload it to a per-job key on every fit, which is an S3
write a dry run must not make and a fresh copy per trial. We tar the package ourselves,
byte-for-byte reproducibly (sorted entries, zeroed times and owners, no __pycache__), name
it by its sha256, and hand the SDK its S3 URI as `source_dir` (the SDK uses an s3:// source_dir
as is: sagemaker/fw_utils.py, tar_and_upload_dir). A dry run computes the URI and uploads
nothing; a real run uploads only when that exact object is not there yet.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dogbreed.aws.client_errors import code_of
from dogbreed.errors import DogbreedError
from dogbreed.jobspec import SOURCE_DIR
from dogbreed.progress import NullReporter, Reporter
from dogbreed.s3_uri import split_s3_uri

BUNDLE_NAME = "sourcedir.tar.gz"
_SKIP_DIRS = {"__pycache__", ".pytest_cache", ".ipynb_checkpoints"}
_SKIP_SUFFIXES = {".pyc", ".pyo"}


def _package_files(root: Path) -> list[Path]:
    files = []
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if any(part in _SKIP_DIRS or part.startswith(".") for part in relative.parts):
            continue
        if path.is_file() and path.suffix not in _SKIP_SUFFIXES:
            files.append(path)
    return files


def bundle_bytes(root: Path = SOURCE_DIR) -> bytes:
    """sourcedir.tar.gz of `root`, identical for identical files wherever it is built."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in _package_files(root):
            info = tarfile.TarInfo(path.relative_to(root).as_posix())
            data = path.read_bytes()
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), compresslevel=9, mtime=0)


@dataclass(frozen=True)
class StagedObject:
    """A local payload and the content-addressed S3 URI it lives at."""

    uri: str
    sha256: str
    size: int
    source: str  # what it is, for plans: a path or 'source_dir'
    payload: bytes | None = None  # in memory (the bundle); None: read `source` from disk

    def to_json(self) -> dict[str, Any]:
        """For plans: a real run uploads it first, unless this exact object is already there."""
        return {"source": self.source, "uri": self.uri, "sha256": self.sha256, "bytes": self.size}


def source_bundle(s3_root: str, root: Path = SOURCE_DIR) -> StagedObject:
    data = bundle_bytes(root)
    digest = hashlib.sha256(data).hexdigest()
    return StagedObject(f"{s3_root}/code/{digest[:16]}/{BUNDLE_NAME}", digest, len(data), str(root), data)


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def local_file(s3_root: str, path: Path) -> StagedObject:
    if not path.is_file():
        raise DogbreedError(f"{path}: file not found")
    digest = _file_sha256(path)
    return StagedObject(f"{s3_root}/files/{digest[:16]}/{path.name}", digest, path.stat().st_size, str(path))


def model_archive(s3_root: str, model_uri: str, use: str) -> tuple[str, list[StagedObject]]:
    """The model's S3 URI for SageMaker, and what to stage for it: nothing for an s3:// URI,
    the local model.tar.gz (content-addressed) otherwise. `use` names the command in the error."""
    if model_uri.startswith("s3://"):
        return model_uri, []
    path = Path(model_uri).expanduser().resolve()
    if not path.is_file():
        raise DogbreedError(f"{model_uri}: expected a model.tar.gz (a file or an s3:// URI) to {use} on SageMaker")
    staged = local_file(s3_root, path)
    return staged.uri, [staged]


def upload_if_missing(s3: Any, staged: StagedObject, reporter: Reporter | None = None) -> bool:
    """Put the object unless it is already there with our sha256; True when it uploaded.
    A file (weights can be hundreds of MB) uploads as a reporter task: bytes, rate, ETA."""
    from botocore.exceptions import ClientError

    bucket, key = split_s3_uri(staged.uri)
    try:
        head = s3.head_object(Bucket=bucket, Key=key)
        if head.get("Metadata", {}).get("sha256") == staged.sha256:
            return False
    except ClientError as exc:
        if code_of(exc) not in ("404", "NoSuchKey", "NotFound"):
            raise DogbreedError(f"{staged.uri}: cannot check the object on S3 ({exc})") from None
    extra = {"Metadata": {"sha256": staged.sha256}}
    try:
        if staged.payload is not None:
            s3.put_object(Bucket=bucket, Key=key, Body=staged.payload, **extra)
        else:
            with (reporter or NullReporter()).task(f"Uploading {Path(staged.source).name}", total=staged.size) as advance:
                s3.upload_file(Filename=staged.source, Bucket=bucket, Key=key, ExtraArgs=extra, Callback=advance)
    except ClientError as exc:
        raise DogbreedError(f"{staged.uri}: upload failed ({exc}); check the bucket and your access") from None
    return True


def ensure_bucket(s3: Any, bucket: str, region: str) -> bool:
    """Create `bucket` in `region` unless it exists; True when it created it.

    For the SDK's default bucket (no sagemaker.bucket): Session.default_bucket() would do the
    same, but it asks STS at a hard-coded regional URL, which AWS_ENDPOINT_URL cannot redirect
    (sagemaker/session.py, sts_regional_endpoint)."""
    from botocore.exceptions import ClientError

    try:
        s3.head_bucket(Bucket=bucket)
        return False
    except ClientError as exc:
        if code_of(exc) not in ("404", "NoSuchBucket", "NotFound"):
            raise DogbreedError(f"bucket {bucket!r}: S3 said {code_of(exc) or exc}") from None
    # us-east-1 is the one region that refuses a LocationConstraint naming itself.
    where = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
    s3.create_bucket(Bucket=bucket, **where)
    return True
