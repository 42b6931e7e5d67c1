"""The one S3 URI parser: bucket and key apart, a URI that is not s3://bucket/... refused
with one line naming it (exit 2)."""

from __future__ import annotations

import re

import pytest

from dogbreed.data.s3store import parse_s3_uri
from dogbreed.errors import UsageError
from dogbreed.s3_uri import split_s3_uri


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("s3://bucket/a/b", ("bucket", "a/b")),
        ("s3://bucket/a/b/", ("bucket", "a/b/")),
        ("s3://bucket", ("bucket", "")),
    ],
)
def test_bucket_and_key_come_apart(uri, expected):
    assert split_s3_uri(uri) == expected


@pytest.mark.parametrize("uri", ["bucket/key", "s3:///key", "https://bucket/key"])
def test_a_uri_without_a_bucket_is_a_usage_error_naming_it(uri):
    with pytest.raises(UsageError, match=f"^{re.escape(uri)}: expected"):
        split_s3_uri(uri)


def test_a_store_prefix_has_no_slashes_at_its_ends():
    assert parse_s3_uri("s3://bucket/data/dogs/") == ("bucket", "data/dogs")
    with pytest.raises(UsageError, match="s3://bucket/prefix"):
        parse_s3_uri("s3:///data")
