"""Where a backend keeps ingested datasets: the store for a destination URI and the default URI.

A local folder is a LocalStore; an s3:// prefix is an S3Store on the AWS gateway the backend
hands over (only backends and the stores they give out talk to AWS).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from dogbreed.data.stores import DatasetStore, LocalStore
from dogbreed.errors import UsageError

if TYPE_CHECKING:
    from dogbreed.aws.session import AwsSession


def open_store(uri: str, aws: Callable[[], AwsSession]) -> DatasetStore:
    """The store for a destination URI; aws is called only for s3:// destinations."""
    if uri.startswith("s3://"):
        from dogbreed.data.s3store import S3Store

        return S3Store.from_uri(uri, aws())
    if "://" in uri and not uri.startswith("file://"):
        raise UsageError(f"{uri}: unsupported destination; use a local folder or s3://bucket/prefix")
    return LocalStore(Path(uri.removeprefix("file://")).expanduser().resolve())
