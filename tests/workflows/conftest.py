"""A workflow runs the layers below it, so its tests use those layers' fixtures, defined where
those layers are tested: the HTTP file server of tests/data (ingest from a URL) and the tuning
workspace of tests/backends/local_tuning (the `tune` plan)."""

from __future__ import annotations

from tests.backends.local_tuning.conftest import shared_feature_cache, tune_env  # noqa: F401
from tests.data.conftest import file_server  # noqa: F401
