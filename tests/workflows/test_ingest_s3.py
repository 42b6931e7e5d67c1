"""Ingest to S3 on a real moto server (boto3's whole HTTP path runs): objects, metadata,
skipping what is there, and an interrupted upload that the next run completes."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import boto3
import pytest

from dogbreed.aws.session import AwsSession
from dogbreed.config import load_config
from dogbreed.data.manifest import parse_manifest
from dogbreed.data.plan import PlannedFile
from dogbreed.data.s3store import LOCK_NAME, S3Store
from dogbreed.errors import DogbreedError
from dogbreed.ledger import Ledger
from dogbreed.workflows.ingest import ingest
from dogbreed.workspace import Workspace
from tests.conftest import dogbreed_cli, error_line
from tests.data.conftest import DOGS, photos, sha256

BUCKET = "dogbreed-test"


@pytest.fixture
def s3(aws_env):
    client = boto3.client("s3", region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    return client


def _objects(s3, prefix: str) -> dict[str, int]:
    found = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix + "/"):
        for obj in page.get("Contents", ()):
            found[obj["Key"][len(prefix) + 1 :]] = obj["Size"]
    return found


def _etags(s3, prefix: str) -> dict[str, str]:
    """{relative key: ETag}: what changes when an object is written again."""
    return {key: s3.head_object(Bucket=BUCKET, Key=f"{prefix}/{key}")["ETag"] for key in _objects(s3, prefix)}


def _config(tmp_path, *sets: str):
    return load_config(sets=list(sets), overrides={"workspace": str(tmp_path / "ws"), "data.workers": 4})


class FailingSession(AwsSession):
    """The real gateway, but its S3 client stops accepting uploads after `allow` PutObjects:
    what a network failure or Ctrl-C in the middle of an upload leaves behind."""

    def __init__(self, config, allow: int) -> None:
        super().__init__(config)
        self.allow, self.lock = allow, threading.Lock()

    def client(self, service, **kwargs):
        real = super().client(service, **kwargs)
        session = self

        class Client:
            def __getattr__(self, name):
                return getattr(real, name)

            def put_object(self, **request):
                if request["Key"].endswith(LOCK_NAME):
                    return real.put_object(**request)  # the ingest lock, not an upload
                with session.lock:
                    session.allow -= 1
                    if session.allow < 0:
                        raise ConnectionResetError("connection reset by peer")
                return real.put_object(**request)

        return Client()


def test_ingest_to_s3_stores_objects_with_metadata_and_skips_them_next_time(s3, tmp_path):
    config = _config(tmp_path)
    uri = f"s3://{BUCKET}/datasets/dogs"
    result = ingest(config, Workspace(tmp_path / "ws"), source=str(DOGS), dest=uri)
    assert result.dataset_uri == uri and (result.uploaded, result.skipped) == (100, 0)

    objects = _objects(s3, "datasets/dogs")
    manifest = parse_manifest(s3.get_object(Bucket=BUCKET, Key="datasets/dogs/manifest.json")["Body"].read())
    assert manifest["manifest_sha256"] == result.manifest_sha256
    assert set(objects) == {f["path"] for f in manifest["files"]} | {"manifest.json"}
    originals = {sha256(p.read_bytes()): p for p in photos()}
    for entry in manifest["files"][::17]:
        head = s3.head_object(Bucket=BUCKET, Key=f"datasets/dogs/{entry['path']}")
        assert head["Metadata"]["sha256"] == entry["sha256"]
        assert head["ContentLength"] == entry["size"] and head["ContentType"] == "image/jpeg"
        body = s3.get_object(Bucket=BUCKET, Key=f"datasets/dogs/{entry['path']}")["Body"].read()
        assert body == originals[entry["sha256"]].read_bytes()

    again = ingest(config, Workspace(tmp_path / "ws"), source=str(DOGS), dest=uri)
    assert (again.uploaded, again.skipped) == (0, 100)

    # What is really there counts, not just the manifest: a deleted object is uploaded again.
    gone = manifest["files"][5]["path"]
    s3.delete_object(Bucket=BUCKET, Key=f"datasets/dogs/{gone}")
    third = ingest(config, Workspace(tmp_path / "ws"), source=str(DOGS), dest=uri)
    assert (third.uploaded, third.skipped) == (1, 99)
    assert gone in _objects(s3, "datasets/dogs")


def test_interrupted_upload_is_completed_by_the_next_run(s3, tmp_path):
    config = _config(tmp_path)
    uri = f"s3://{BUCKET}/interrupted"
    with pytest.raises(DogbreedError, match="run the same command again"):
        ingest(
            config,
            Workspace(tmp_path / "ws"),
            source=str(DOGS),
            dest=uri,
            store=S3Store.from_uri(uri, FailingSession(config.sagemaker, 30)),
        )
    present = _objects(s3, "interrupted")
    assert "manifest.json" not in present  # no manifest may describe a half-stored dataset
    assert len(present) == 30

    result = ingest(config, Workspace(tmp_path / "ws"), source=str(DOGS), dest=uri)
    assert (result.uploaded, result.skipped) == (100 - len(present), len(present))
    assert len(_objects(s3, "interrupted")) == 101


def test_an_interrupted_change_removes_the_old_manifest_first(s3, tmp_path):
    uri = f"s3://{BUCKET}/changing"
    first = ingest(_config(tmp_path), Workspace(tmp_path / "ws"), source=str(DOGS), dest=uri)
    before = set(_objects(s3, "changing")) - {"manifest.json"}
    reseeded = _config(tmp_path, "data.seed=5")  # another split: files move between split folders
    with pytest.raises(DogbreedError):
        ingest(
            reseeded,
            Workspace(tmp_path / "ws"),
            source=str(DOGS),
            dest=uri,
            store=S3Store.from_uri(uri, FailingSession(reseeded.sagemaker, 3)),
        )
    assert "manifest.json" not in _objects(s3, "changing")
    done = ingest(reseeded, Workspace(tmp_path / "ws"), source=str(DOGS), dest=uri)
    assert done.manifest_sha256 != first.manifest_sha256 and done.uploaded + done.skipped == 100
    after = {
        f["path"] for f in parse_manifest(s3.get_object(Bucket=BUCKET, Key="changing/manifest.json")["Body"].read())["files"]
    }
    # Skipped: every photo that stayed where it was, plus the 3 the failed run stored.
    assert 0 < len(before & after) < 100
    assert done.skipped == len(before & after) + 3


def test_cli_sagemaker_backend_defaults_to_the_bucket_prefix(s3, tmp_path):
    result = dogbreed_cli(
        "ingest", str(DOGS), "--backend", "sagemaker", "--set", f"sagemaker.bucket={BUCKET}", "--json", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["dataset_uri"] == f"s3://{BUCKET}/dogbreed/data/dogs"
    assert answer["uploaded"] == 100 and len(_objects(s3, "dogbreed/data/dogs")) == 101
    dataset = Ledger(tmp_path / ".dogbreed" / "ledger.sqlite").latest("dataset")
    assert (dataset.backend, dataset.uri) == ("sagemaker", answer["dataset_uri"])
    assert dataset.meta["manifest_sha256"] == answer["manifest_sha256"]


def test_missing_bucket_is_a_one_line_error(aws_env, tmp_path):
    result = dogbreed_cli("ingest", str(DOGS), "--dest", "s3://no-such-bucket/x", "--json", cwd=tmp_path)
    line = error_line(result.stderr)
    assert result.returncode == 1 and "no-such-bucket" in line and "does not exist" in line


def test_prune_deletes_the_stale_objects_in_batches_and_nothing_outside_the_splits(s3, tmp_path, monkeypatch):
    from dogbreed.data import s3store

    source = shutil.copytree(DOGS, tmp_path / "dogs")
    config = _config(tmp_path)
    uri = f"s3://{BUCKET}/datasets/dogs"
    ingest(config, Workspace(tmp_path / "ws"), source=str(source), dest=uri)
    s3.put_object(Bucket=BUCKET, Key="datasets/dogs/README.txt", Body=b"not ours")
    s3.put_object(Bucket=BUCKET, Key="datasets/dogs-other/train/x/1.jpg", Body=b"another prefix")
    shutil.rmtree(source / "n02111500-Great_Pyrenees")
    dropped = {p for p in _objects(s3, "datasets/dogs") if "Great_Pyrenees" in p}
    assert len(dropped) == 10

    kept = ingest(config, Workspace(tmp_path / "ws"), source=str(source), dest=uri)
    assert (kept.stale, kept.pruned) == (10, 0) and dropped <= set(_objects(s3, "datasets/dogs"))

    monkeypatch.setattr(s3store, "DELETE_BATCH", 4)  # 10 keys: three DeleteObjects requests
    aws = AwsSession(config.sagemaker)
    requests = []
    # On the session, so the store's own client (made later) carries it.
    aws.boto.events.register("provide-client-params.s3.DeleteObjects", lambda params, **_: requests.append(params))
    pruned = ingest(
        config, Workspace(tmp_path / "ws"), source=str(source), dest=uri, prune=True, store=S3Store.from_uri(uri, aws)
    )
    assert (pruned.stale, pruned.pruned, pruned.uploaded) == (0, 10, 0)
    assert [len(r["Delete"]["Objects"]) for r in requests] == [4, 4, 2]
    assert all(r["Bucket"] == BUCKET and r["Delete"]["Quiet"] is True for r in requests)
    assert {o["Key"] for r in requests for o in r["Delete"]["Objects"]} == {f"datasets/dogs/{p}" for p in dropped}
    left = _objects(s3, "datasets/dogs")
    manifest = parse_manifest(s3.get_object(Bucket=BUCKET, Key="datasets/dogs/manifest.json")["Body"].read())
    assert set(left) == {f["path"] for f in manifest["files"]} | {"manifest.json", "README.txt"}
    assert "train/x/1.jpg" in _objects(s3, "datasets/dogs-other")


def test_one_ingest_at_a_time_per_prefix_through_a_conditional_write(s3, tmp_path):
    config = _config(tmp_path)
    uri = f"s3://{BUCKET}/locked"
    aws = AwsSession(config.sagemaker)
    requests = []
    for operation in ("PutObject", "DeleteObject"):
        aws.boto.events.register(f"provide-client-params.s3.{operation}", lambda params, **_: requests.append(params))
    first = ingest(config, Workspace(tmp_path / "ws"), source=str(DOGS), dest=uri, store=S3Store.from_uri(uri, aws))
    # The lock is created only if absent (If-None-Match: *) and deleted only while still ours.
    lock_puts = [r for r in requests if r["Key"] == f"locked/{LOCK_NAME}" and "IfNoneMatch" in r]
    (deleted,) = [r for r in requests if r["Key"] == f"locked/{LOCK_NAME}" and "IfMatch" in r]
    assert len(lock_puts) == 1 and lock_puts[0]["IfNoneMatch"] == "*"
    body = lock_puts[0]["Body"]
    holder = json.loads(body if isinstance(body, bytes) else body.getvalue())
    assert holder["pid"] == os.getpid() and len(holder["token"]) == 32
    assert deleted["IfMatch"].strip('"') and LOCK_NAME not in _objects(s3, "locked")
    before = _etags(s3, "locked")

    # While another ingest holds the prefix, a second one (another split: it would rewrite
    # files and the manifest) is refused with one line naming the holder, and writes nothing.
    with S3Store.from_uri(uri, AwsSession(config.sagemaker)).lock():
        result = dogbreed_cli("ingest", str(DOGS), "--dest", uri, "--set", "data.seed=5", cwd=tmp_path)
        assert result.returncode == 1 and result.stdout == ""
        (line,) = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert line.startswith(f"error: another ingest is writing to {uri} (since ")
        assert f"delete {uri}/{LOCK_NAME}" in line
        assert {k: v for k, v in _etags(s3, "locked").items() if k != LOCK_NAME} == before
    assert LOCK_NAME not in _objects(s3, "locked")
    again = ingest(_config(tmp_path, "data.seed=5"), Workspace(tmp_path / "ws"), source=str(DOGS), dest=uri)
    assert again.manifest_sha256 != first.manifest_sha256


def test_a_lock_left_by_a_killed_ingest_is_named_and_a_stolen_lock_is_not_released(s3, tmp_path):
    config = _config(tmp_path)
    uri = f"s3://{BUCKET}/left"
    s3.put_object(Bucket=BUCKET, Key=f"left/{LOCK_NAME}", Body=b"written by hand")
    with pytest.raises(DogbreedError, match=rf"another ingest is writing to {uri} \(lock held\).*delete {uri}/{LOCK_NAME}"):
        ingest(config, Workspace(tmp_path / "ws"), source=str(DOGS), dest=uri)
    assert set(_objects(s3, "left")) == {LOCK_NAME}  # refused before any upload
    s3.delete_object(Bucket=BUCKET, Key=f"left/{LOCK_NAME}")  # what the message says to do
    assert ingest(config, Workspace(tmp_path / "ws"), source=str(DOGS), dest=uri).uploaded == 100

    # A's lock is deleted by hand and B takes the prefix: A, finishing late, leaves B's lock alone.
    a = S3Store.from_uri(uri, AwsSession(config.sagemaker)).lock()
    b = S3Store.from_uri(uri, AwsSession(config.sagemaker)).lock()
    a.__enter__()
    s3.delete_object(Bucket=BUCKET, Key=f"left/{LOCK_NAME}")
    b.__enter__()
    a.__exit__(None, None, None)
    assert LOCK_NAME in _objects(s3, "left")
    b.__exit__(None, None, None)
    assert LOCK_NAME not in _objects(s3, "left")


def _planned(photo, name: str, digest: str | None = None) -> PlannedFile:
    digest = digest or sha256(photo.read_bytes())
    return PlannedFile(f"train/a/{name}", "train", "a", photo, photo.stat().st_size, digest)


def test_each_photo_is_one_put_that_does_not_wait_for_100_continue(s3):
    """botocore sends an S3 PUT as `Expect: 100-continue` and waits for the server's go-ahead
    before the bytes: a second round trip per photo, which is what a slow network charges
    for. The store's client sends photos without it; a plain client still asks."""
    sent = []
    s3.meta.events.register("before-send.s3.PutObject", lambda request, **_: sent.append(request))
    s3.put_object(Bucket=BUCKET, Key="plain.jpg", Body=photos()[0].read_bytes())
    assert sent.pop().headers.get("Expect") == b"100-continue"
    chosen = photos()[:6]
    S3Store(BUCKET, "direct", s3).put([_planned(p, p.name) for p in chosen], 3, lambda n: None)
    assert sorted(r.url.rsplit("/", 1)[1] for r in sent) == sorted(p.name for p in chosen)
    assert [r.headers.get("Expect") for r in sent] == [None] * len(chosen)
    for photo in chosen:
        stored = s3.get_object(Bucket=BUCKET, Key=f"direct/train/a/{photo.name}")
        assert stored["Body"].read() == photo.read_bytes()
        assert stored["Metadata"] == {"sha256": sha256(photo.read_bytes())}


def test_a_photo_changed_after_its_check_is_refused_not_stored_under_the_old_hash(s3, tmp_path):
    photo = tmp_path / "a.jpg"
    shutil.copyfile(photos()[0], photo)
    planned = _planned(photo, "a.jpg")
    photo.write_bytes(photos()[1].read_bytes())
    with pytest.raises(DogbreedError, match=r"a\.jpg: changed since ingest checked it; run ingest again"):
        S3Store(BUCKET, "direct", s3).put([planned], 1, lambda n: None)
    assert _objects(s3, "direct") == {}


_OPENED: list[str] | None = None  # while a test collects: every path Python opens (sys.audit's "open")


def _note_open(event: str, args: tuple) -> None:
    if event == "open" and _OPENED is not None and isinstance(args[0], str | os.PathLike):
        _OPENED.append(os.fspath(args[0]))


class _Tasks:
    """A reporter that keeps the names of the steps ingest starts."""

    def __init__(self) -> None:
        self.started: list[str] = []

    def task(self, description, total=None):
        self.started.append(description)
        return contextlib.nullcontext(lambda n: None)

    def info(self, message):
        pass

    def warn(self, message):
        pass


def test_a_missing_bucket_is_refused_before_any_photo_is_opened(aws_env, tmp_path):
    global _OPENED
    sys.addaudithook(_note_open)  # Python's own hook on every open(): what reads a photo, whoever does
    source = tmp_path / "src"
    for breed, chosen in (("Basenji", photos()[:6]), ("Boxer", photos()[-6:])):
        (source / breed).mkdir(parents=True)
        for photo in chosen:
            shutil.copy(photo, source / breed / photo.name)
    sets = ("backend=sagemaker", "sagemaker.bucket=no-such-bucket")
    tasks, _OPENED = _Tasks(), []
    try:
        with pytest.raises(DogbreedError) as refused:
            ingest(_config(tmp_path, *sets), Workspace(tmp_path / "ws"), source=str(source), reporter=tasks)
        opened_before_refusal = [p for p in _OPENED if p.startswith(str(source))]
        assert str(refused.value).startswith("s3://no-such-bucket/dogbreed/data/src: bucket 'no-such-bucket' does not exist")
        assert tasks.started == [] and opened_before_refusal == []
        # The same ingest into a bucket that exists does open every photo: the hook sees them.
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="no-such-bucket")
        ingest(_config(tmp_path, *sets), Workspace(tmp_path / "ws"), source=str(source), reporter=tasks)
        assert len({p for p in _OPENED if p.startswith(str(source))}) == 12
        assert tasks.started[0] == "Checking 12 images"
    finally:
        _OPENED = None


def test_no_credentials_is_said_before_the_photos_are_checked(moto_server, tmp_path):
    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    env.update(HOME=str(tmp_path), AWS_EC2_METADATA_DISABLED="true", AWS_ENDPOINT_URL=moto_server)
    args = ("--backend", "sagemaker", "--set", f"sagemaker.bucket={BUCKET}", "--set", "sagemaker.region=us-east-1")
    exe = Path(sys.executable).parent / "dogbreed"
    result = subprocess.run(
        [str(exe), "ingest", str(DOGS), *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 1
    assert error_line(result.stderr) == (
        f"error: s3://{BUCKET}/dogbreed/data/dogs: no AWS credentials; set sagemaker.profile or the AWS_* environment variables"
    )
    assert "Checking" not in result.stderr
