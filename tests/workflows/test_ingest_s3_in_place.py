"""`ingest s3://bucket/prefix`: photos already on S3 (the seed's upload) become a dataset in
place, on a real moto server: the layout is recognised from the listing, every photo is read
and checked, manifest.json is the one object written, and nothing is uploaded again."""

from __future__ import annotations

import json

import boto3
import pytest

from dogbreed.aws.preflight import read_manifest, rehearsal_dataset
from dogbreed.aws.session import AwsSession
from dogbreed.config import load_config
from dogbreed.data.manifest import parse_manifest
from dogbreed.data.s3store import LOCK_NAME, S3Store
from dogbreed.errors import DogbreedError, UsageError
from dogbreed.workflows.ingest import ingest
from dogbreed.workspace import Workspace
from tests.backends.sagemaker.conftest import record_calls
from tests.conftest import dogbreed_cli
from tests.data.conftest import DOGS, photos

BUCKET = "dogbreed-seed"
BREEDS = ["n02088238-basset", "n02088364-beagle", "n02096585-Boston_bull"]


@pytest.fixture
def s3(aws_env):
    client = boto3.client("s3", region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    return client


def _seed_dogimages(s3) -> dict[str, bytes]:
    """dogImages as the seed notebook uploaded it: seed/dogImages/{train,valid,test}/NNN.Breed/*.jpg,
    plus what real buckets hold: a truncated photo and a .DS_Store."""
    put: dict[str, bytes] = {}
    for number, breed in enumerate(BREEDS, start=1):
        folder = f"{number:03d}.{breed.split('-', 1)[1].title()}"
        shots = photos(breed)
        for split, chosen in (("train", shots[:3]), ("valid", shots[3:4]), ("test", shots[4:5])):
            for photo in chosen:
                put[f"seed/dogImages/{split}/{folder}/{photo.name}"] = photo.read_bytes()
    put["seed/dogImages/train/001.Basset/broken.jpg"] = photos(BREEDS[0])[6].read_bytes()[:2000]
    put["seed/dogImages/.DS_Store"] = b"\0\0\0\1Bud1"
    for key, body in put.items():
        s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    return put


def _config(tmp_path, *sets: str):
    return load_config(sets=list(sets), overrides={"workspace": str(tmp_path / "ws"), "data.workers": 4})


def _ingest(tmp_path, source: str, *sets: str):
    config = _config(tmp_path, *sets)
    aws = AwsSession(config.sagemaker)
    calls = record_calls(aws, "s3")
    result = ingest(config, Workspace(tmp_path / "ws"), source=source, store=S3Store.from_uri(source, aws))
    return result, calls


def test_dogimages_on_s3_is_checked_and_gets_a_manifest_beside_it(tmp_path, s3):
    seeded = _seed_dogimages(s3)
    etags = {key: s3.head_object(Bucket=BUCKET, Key=key)["ETag"] for key in seeded}
    result, calls = _ingest(tmp_path, f"s3://{BUCKET}/seed")

    assert result.dataset_uri == f"s3://{BUCKET}/seed" and result.layout == "dogimages"
    assert result.splits == {"train": 9, "valid": 3, "test": 3} and result.num_classes == 3
    assert (result.uploaded, result.skipped, result.ignored) == (0, 15, 1)
    assert [p["file"] for p in result.problems] == ["train/001.Basset/broken.jpg"]
    assert result.problems[0]["problem"].startswith("corrupt or truncated")

    # The exact S3 requests: one listing, every photo read once, the lock, the manifest.
    photo_keys = sorted(k for k in seeded if k.endswith(".jpg"))
    assert calls[0] == ("ListObjectsV2", {"Bucket": BUCKET, "Prefix": "seed/"})
    reads = sorted(params["Key"] for op, params in calls if op == "GetObject")
    assert reads == sorted([*photo_keys, "seed/manifest.json"])
    writes = [params["Key"] for op, params in calls if op == "PutObject"]
    assert writes == [f"seed/{LOCK_NAME}", "seed/manifest.json"]  # not one photo uploaded
    assert [params["Key"] for op, params in calls if op == "DeleteObject"] == [f"seed/{LOCK_NAME}"]
    assert {op for op, _ in calls} == {"ListObjectsV2", "GetObject", "PutObject", "DeleteObject"}
    assert {key: s3.head_object(Bucket=BUCKET, Key=key)["ETag"] for key in seeded} == etags

    # The manifest names the objects where they are, with their real sizes and hashes.
    manifest = parse_manifest(s3.get_object(Bucket=BUCKET, Key="seed/manifest.json")["Body"].read())
    assert manifest["manifest_sha256"] == result.manifest_sha256
    assert [c["label"] for c in manifest["classes"]] == ["Basset", "Beagle", "Boston Bull"]
    by_path = {f["path"]: f for f in manifest["files"]}
    assert sorted(f"seed/{path}" for path in by_path) == sorted(k for k in photo_keys if not k.endswith("broken.jpg"))
    first = "dogImages/valid/002.Beagle/" + photos(BREEDS[1])[3].name
    assert by_path[first]["split"] == "valid" and by_path[first]["size"] == len(seeded[f"seed/{first}"])


def test_a_second_run_writes_nothing_and_training_can_read_it(tmp_path, s3):
    _seed_dogimages(s3)
    first, _ = _ingest(tmp_path, f"s3://{BUCKET}/seed")
    again, calls = _ingest(tmp_path, f"s3://{BUCKET}/seed/")
    assert again.manifest_sha256 == first.manifest_sha256
    assert [params["Key"] for op, params in calls if op == "PutObject"] == [f"seed/{LOCK_NAME}"]

    # What the pre-flight and the job read: the manifest, then files by their paths.
    config = _config(tmp_path)
    aws = AwsSession(config.sagemaker)
    manifest = read_manifest(aws, f"s3://{BUCKET}/seed")
    local = rehearsal_dataset(aws, f"s3://{BUCKET}/seed", manifest, 1, tmp_path / "rehearsal")
    chosen = json.loads((local / "manifest.json").read_text())["files"]
    assert [f["split"] for f in chosen] == ["train", "valid", "test"]
    assert all((local / f["path"]).stat().st_size == f["size"] for f in chosen)


def test_stanford_folders_are_split_in_place(tmp_path, s3):
    for breed in BREEDS:
        for photo in photos(breed)[:6]:
            s3.put_object(Bucket=BUCKET, Key=f"stanford/Images/{breed}/{photo.name}", Body=photo.read_bytes())
    result, calls = _ingest(
        tmp_path, f"s3://{BUCKET}/stanford", "data.split.train=0.6", "data.split.valid=0.2", "data.split.test=0.2"
    )
    assert result.layout == "stanford" and result.uploaded == 0 and sum(result.splits.values()) == 18
    manifest = parse_manifest(s3.get_object(Bucket=BUCKET, Key="stanford/manifest.json")["Body"].read())
    assert all(f["path"].startswith("Images/n020") for f in manifest["files"])  # where they are, not split folders
    assert {f["split"] for f in manifest["files"]} == {"train", "valid", "test"}
    assert [params["Key"] for op, params in calls if op == "PutObject"] == [f"stanford/{LOCK_NAME}", "stanford/manifest.json"]


def test_an_empty_prefix_and_a_different_dest_are_one_line_each(tmp_path, s3):
    with pytest.raises(DogbreedError, match=rf"s3://{BUCKET}/nothing: no photos found"):
        _ingest(tmp_path, f"s3://{BUCKET}/nothing")
    config = _config(tmp_path)
    with pytest.raises(UsageError, match="is ingested in place"):
        ingest(config, Workspace(tmp_path / "ws"), source=f"s3://{BUCKET}/seed", dest=f"s3://{BUCKET}/elsewhere")


def test_the_cli_ingests_in_place(tmp_path, s3):
    _seed_dogimages(s3)
    run = dogbreed_cli(
        "ingest", f"s3://{BUCKET}/seed", "--json", "--backend", "sagemaker",
        "--set", f"workspace={tmp_path / 'ws'}", "--set", "sagemaker.region=us-east-1",
        "--set", "sagemaker.role=arn:aws:iam::123456789012:role/SageMakerRole",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    answer = json.loads(run.stdout)
    assert answer["dataset_uri"] == f"s3://{BUCKET}/seed" and answer["uploaded"] == 0 and answer["skipped"] == 15
    assert answer["splits"] == {"train": 9, "valid": 3, "test": 3}
    assert DOGS.is_dir()


def test_a_photo_over_max_image_bytes_is_refused_before_it_is_fetched(tmp_path, s3):
    """data.max_image_bytes holds for S3 objects as for files (#15 item 8): from the listing's
    size, with no GetObject of the object, in the files' words."""
    seeded = _seed_dogimages(s3)
    limit = max(len(body) for key, body in seeded.items() if key.endswith(".jpg")) + 1
    big = "seed/dogImages/train/002.Beagle/big.jpg"
    body = photos(BREEDS[1])[5].read_bytes()
    body += b"\0" * (limit + 1 - len(body))  # a photo that decodes, one byte over the limit
    s3.put_object(Bucket=BUCKET, Key=big, Body=body)

    result, calls = _ingest(tmp_path, f"s3://{BUCKET}/seed", f"data.max_image_bytes={limit}")

    problems = {p["file"]: p["problem"] for p in result.problems}
    assert problems["train/002.Beagle/big.jpg"] == (
        f"too large: {len(body):,} bytes > data.max_image_bytes {limit:,}; refused before reading"
    )
    assert big not in [params["Key"] for op, params in calls if op == "GetObject"]
    assert result.splits == {"train": 9, "valid": 3, "test": 3}  # every photo under the limit is in


def test_an_object_larger_than_it_was_listed_is_refused_from_its_content_length(tmp_path, s3):
    """Between the listing and the GET an object can be replaced: the GET's ContentLength is
    checked before its body is read."""
    from dogbreed.regular_files import FileRefusedError

    s3.put_object(Bucket=BUCKET, Key="seed/a.jpg", Body=b"x" * 5000)
    store = S3Store.from_uri(f"s3://{BUCKET}/seed", AwsSession(_config(tmp_path).sagemaker))
    with pytest.raises(FileRefusedError) as refused:
        store.read_object("a.jpg", 4096, "data.max_image_bytes")
    assert refused.value.problem == "too large: 5,000 bytes > data.max_image_bytes 4,096; refused before reading"
    assert store.read_object("a.jpg", 5000) == b"x" * 5000
