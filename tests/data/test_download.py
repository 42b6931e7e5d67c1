"""Downloads against a real HTTP server on 127.0.0.1: resume with Range after a dropped
connection (within one call and across calls), verification of size and sha256."""

from __future__ import annotations

import json
import os

import pytest

from dogbreed.data.download import download
from dogbreed.errors import DogbreedError
from tests.data.conftest import sha256

BODY = os.urandom(3 * 2**20 + 12345)  # several read chunks, not a round number


@pytest.fixture
def served(file_server):
    file_server.files["/dogImages.zip"] = BODY
    return file_server


def test_download_verifies_and_is_reused(served, tmp_path):
    dest = tmp_path / "dl" / "dogImages.zip"
    got = download(served.url + "/dogImages.zip", dest, sha256=sha256(BODY), backoff=0)
    assert dest.read_bytes() == BODY and got.sha256 == sha256(BODY) and got.size == len(BODY)
    assert not got.resumed and len(served.requests) == 1
    again = download(served.url + "/dogImages.zip", dest, sha256=sha256(BODY), backoff=0)
    assert again.attempts == 0 and len(served.requests) == 1  # no second request
    assert [p.name for p in dest.parent.iterdir() if p.name.endswith((".part", ".part.json"))] == []


def test_dropped_connection_resumes_with_range(served, tmp_path):
    cut = 1_000_000
    served.drops["/dogImages.zip"] = [cut]
    dest = tmp_path / "dogImages.zip"
    got = download(served.url + "/dogImages.zip", dest, sha256=sha256(BODY), backoff=0)
    assert dest.read_bytes() == BODY and got.resumed
    first, second = served.requests
    assert first["range"] is None and first["sent"] == cut
    assert second["range"] == f"bytes={cut}-" and second["if_range"] == served.etag("/dogImages.zip")
    # Only the rest was sent again.
    assert served.bytes_sent("/dogImages.zip") == len(BODY)


def test_interrupted_run_is_resumed_by_the_next_run(served, tmp_path):
    served.drops["/dogImages.zip"] = [700_000]
    dest = tmp_path / "dogImages.zip"
    with pytest.raises(DogbreedError, match="run the same command again to resume"):
        download(served.url + "/dogImages.zip", dest, retries=0, backoff=0)
    assert not dest.exists()
    assert (tmp_path / "dogImages.zip.part").stat().st_size == 700_000
    got = download(served.url + "/dogImages.zip", dest, sha256=sha256(BODY), backoff=0)
    assert dest.read_bytes() == BODY and got.resumed
    assert served.requests[-1]["range"] == "bytes=700000-"
    assert served.bytes_sent("/dogImages.zip") == len(BODY)


def test_changed_file_restarts_instead_of_splicing(served, tmp_path):
    served.drops["/dogImages.zip"] = [500_000]
    dest = tmp_path / "dogImages.zip"
    with pytest.raises(DogbreedError):
        download(served.url + "/dogImages.zip", dest, retries=0, backoff=0)
    new_body = os.urandom(len(BODY))
    served.files["/dogImages.zip"] = new_body  # new ETag: If-Range fails, server sends 200
    got = download(served.url + "/dogImages.zip", dest, backoff=0)
    assert dest.read_bytes() == new_body and got.sha256 == sha256(new_body)
    assert served.requests[-1]["sent"] == len(new_body)


def test_server_without_range_support_restarts_cleanly(served, tmp_path):
    served.ranges = False
    served.drops["/dogImages.zip"] = [400_000]
    dest = tmp_path / "dogImages.zip"
    download(served.url + "/dogImages.zip", dest, sha256=sha256(BODY), backoff=0)
    assert dest.read_bytes() == BODY


def test_finished_part_left_before_rename_is_not_fetched_again(served, tmp_path):
    # What a run killed between the last byte and the rename leaves behind.
    dest = tmp_path / "dogImages.zip"
    url = served.url + "/dogImages.zip"
    (tmp_path / "dogImages.zip.part").write_bytes(BODY)
    (tmp_path / "dogImages.zip.part.json").write_text(json.dumps({"url": url, "etag": served.etag("/dogImages.zip")}))
    got = download(served.url + "/dogImages.zip", dest, sha256=sha256(BODY), backoff=0)
    assert dest.read_bytes() == BODY and served.bytes_sent("/dogImages.zip") == 0
    assert got.size == len(BODY) and served.requests[0]["range"] == f"bytes={len(BODY)}-"


def test_checksum_mismatch_is_an_error_and_keeps_nothing(served, tmp_path):
    dest = tmp_path / "dogImages.zip"
    with pytest.raises(DogbreedError, match="does not match data.sha256"):
        download(served.url + "/dogImages.zip", dest, sha256="0" * 64, backoff=0)
    assert list(tmp_path.iterdir()) == []


def test_short_responses_give_up_with_a_clear_error(served, tmp_path):
    served.drops["/dogImages.zip"] = [100, 100, 100]
    with pytest.raises(DogbreedError, match="after 3 attempts") as caught:
        download(served.url + "/dogImages.zip", tmp_path / "x.zip", retries=2, backoff=0)
    assert "(300 bytes kept)" in str(caught.value)


def test_http_errors_are_not_retried_unless_transient(served, tmp_path):
    with pytest.raises(DogbreedError, match="HTTP 404"):
        download(served.url + "/missing.zip", tmp_path / "m.zip", backoff=0)
    assert len(served.requests) == 1
    served.status["/dogImages.zip"] = 503
    with pytest.raises(DogbreedError, match="HTTP 503 after 2 attempts"):
        download(served.url + "/dogImages.zip", tmp_path / "d.zip", retries=1, backoff=0)
    assert len(served.requests) == 3
