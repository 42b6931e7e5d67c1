"""The one reading of an S3 URI: 's3://bucket/a/b' -> ('bucket', 'a/b').

Data stores, staging, pre-flight checks and job outputs all take URIs apart here, so a
bucket-less or scheme-less URI is refused the same way everywhere.
"""

from __future__ import annotations

from dogbreed.errors import UsageError


def split_s3_uri(uri: str, what: str = "key") -> tuple[str, str]:
    """(bucket, key) with the key as written (a prefix keeps its trailing '/'); UsageError
    naming the URI when it is not s3://bucket[/...]. `what` names the part after the bucket
    in that message ('key', 'prefix')."""
    if not uri.startswith("s3://"):
        raise UsageError(f"{uri}: expected an s3:// URI (s3://bucket/{what})")
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    if not bucket:
        raise UsageError(f"{uri}: expected s3://bucket/{what}")
    return bucket, key
