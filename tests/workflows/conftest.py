"""A workflow runs the layers below it, so its tests use those layers' fixtures, defined where
those layers are tested: the HTTP file server of tests/data (ingest from a URL)."""

from __future__ import annotations

from tests.data.conftest import file_server  # noqa: F401
