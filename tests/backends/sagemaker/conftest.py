"""Fixtures of the SageMaker backend tests: a config, a backend on the moto server, a dataset on S3."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from dogbreed.backends.sagemaker import SageMakerBackend
from dogbreed.config import load_config
from dogbreed.progress import NullReporter
from dogbreed.workspace import Workspace

ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"  # moto's default account
BUCKET = "dogbreed-test-bucket"
DATASET = f"s3://{BUCKET}/dogbreed/data/dogs"
REGION = "us-east-1"
TRAINING_IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.8.0-gpu-py312"
# The last PyTorch training container with smdebug installed: where sagemaker.debugger=true records.
DEBUGGER_CONTAINER = (
    "sagemaker.framework_version=1.13.1",
    "sagemaker.inference_framework_version=1.13.1",
    "sagemaker.py_version=py39",
)
INFERENCE_IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-inference:2.6.0-cpu-py312"


def sm_config(tmp_path: Path, *sets: str, files: tuple[Path, ...] = ()):
    """A sagemaker-backend config; pre-flight off unless a test turns it on."""
    base = [
        "backend=sagemaker",
        f"sagemaker.role={ROLE}",
        f"sagemaker.bucket={BUCKET}",
        f"sagemaker.region={REGION}",
        "sagemaker.preflight=false",
        f"workspace={tmp_path / 'ws'}",
    ]
    return load_config(files, sets=[*base, *sets])


class RecordingReporter(NullReporter):
    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, message: str) -> None:
        self.lines.append(message)

    def warn(self, message: str) -> None:
        self.lines.append(f"warning: {message}")


def make_backend(config, **kwargs) -> SageMakerBackend:
    backend = SageMakerBackend(config, Workspace(Path(config.workspace)), RecordingReporter(), **kwargs)
    backend.poll_seconds = 0  # moto finishes everything at once
    return backend


@pytest.fixture
def s3(aws_env):
    import boto3

    client = boto3.client("s3", region_name=REGION)
    client.create_bucket(Bucket=BUCKET)
    return client


@pytest.fixture
def sagemaker_client(aws_env):
    import boto3

    return boto3.client("sagemaker", region_name=REGION)


def upload_dataset(s3, dogs_dir: Path, per_breed: tuple[int, int, int] = (2, 1, 1), breeds: int = 3) -> dict:
    """A tiny dataset as `dogbreed ingest --dest s3://` stores it: files + manifest.json."""
    folders = sorted(p.name for p in dogs_dir.iterdir() if p.is_dir())[:breeds]
    classes = [{"index": i, "folder": f, "label": f.split("-", 1)[1].replace("_", " ")} for i, f in enumerate(folders)]
    files = []
    splits = ["train"] * per_breed[0] + ["valid"] * per_breed[1] + ["test"] * per_breed[2]
    for cls in classes:
        for split, photo in zip(splits, sorted((dogs_dir / cls["folder"]).iterdir())):
            data = photo.read_bytes()
            path = f"{split}/{cls['folder']}/{photo.name}"
            s3.put_object(Bucket=BUCKET, Key=f"dogbreed/data/dogs/{path}", Body=data)
            files.append(
                {
                    "path": path,
                    "split": split,
                    "label": cls["label"],
                    "index": cls["index"],
                    "size": len(data),
                    "sha256": hashlib.sha256(data).hexdigest(),
                }
            )
    manifest = {
        "version": 1,
        "source": str(dogs_dir),
        "layout": "stanford",
        "classes": classes,
        "files": files,
        "manifest_sha256": "0" * 64,
    }
    s3.put_object(Bucket=BUCKET, Key="dogbreed/data/dogs/manifest.json", Body=json.dumps(manifest).encode())
    return manifest


def record_calls(aws, service: str) -> list[tuple[str, dict]]:
    """The (operation, params) of every call the session's clients of `service` make from now
    on, as boto3 receives them: registered on the boto3 session, so clients made later (the
    backend makes its own) inherit the handler."""
    calls: list[tuple[str, dict]] = []

    def record(params, model, **_):
        calls.append((model.name, dict(params)))

    aws.boto.events.register(f"provide-client-params.{service}", record)
    return calls


@pytest.fixture(scope="session")
def moto_plus(tmp_path_factory):
    """A second moto server that also knows SageMaker's quotas and UpdateEndpoint
    (tests/backends/sagemaker/moto_plus.py); yields (URL, the JSON file the quotas are read from)."""
    import os
    import sys

    from dogbreed.testing import moto_server

    seed = tmp_path_factory.mktemp("quotas") / "quotas.json"
    script = Path(__file__).with_name("moto_plus.py")
    env = {**os.environ, "DOGBREED_QUOTAS_FILE": str(seed)}
    with moto_server(command=[sys.executable, str(script)], env=env) as url:
        yield url, seed


@pytest.fixture
def aws_plus(aws_env, moto_plus, monkeypatch):
    """Every AWS client aimed at moto_plus instead of the plain moto server; state reset.
    Request it before `s3` and `sagemaker_client` (an autouse fixture of the module does)."""
    import urllib.request

    url, seed = moto_plus
    monkeypatch.setenv("AWS_ENDPOINT_URL", url)
    urllib.request.urlopen(urllib.request.Request(url + "/moto-api/reset", method="POST"), timeout=10)
    seed.write_text("{}")
    return url


def sagemaker_quota(code: str, name: str, value: float) -> dict:
    """A SageMaker quota as ListAWSDefaultServiceQuotas answers it."""
    return {
        "ServiceCode": "sagemaker",
        "ServiceName": "Amazon SageMaker",
        "QuotaArn": f"arn:aws:servicequotas:{REGION}::sagemaker/{code}",
        "QuotaCode": code,
        "QuotaName": name,
        "Value": value,
        "Unit": "None",
        "Adjustable": True,
        "GlobalQuota": False,
    }


@pytest.fixture
def seed_quotas(aws_plus, moto_plus):
    """Call it with the account's SageMaker quotas (moto_plus reads them per request)."""
    _, seed = moto_plus

    def write(defaults: list[dict] = (), applied: dict | None = None, denied: bool = False) -> None:
        seed.write_text(json.dumps({"defaults": list(defaults), "applied": applied or {}, "denied": denied}))

    return write
