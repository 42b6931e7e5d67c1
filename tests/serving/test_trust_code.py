"""A model archive runs its own code only when the user vouches for it (#15 item 9).

A model's code/ is compared with the handler files of the installed dogbreed (digests from
the installed package, never from the archive); anything else needs --trust-code. Pickle
payloads in a model's weight files are refused by weights_only=True in every form."""

from __future__ import annotations

import json
import pickle
import shutil
import sys
import tarfile
from pathlib import Path

import pytest
import torch

from dogbreed.errors import UsageError
from dogbreed.jobspec import SOURCE_DIR
from dogbreed.serving.handler_code import UntrustedCodeError, check_handler_code, code_differences, installed_handler
from tests.conftest import dogbreed_cli
from tests.serving.conftest import servers_under
from tests.serving.model_factory import copy_code

pytestmark = pytest.mark.usefixtures("no_server_left")


def _model_dir(dest: Path) -> Path:
    """A model dir carrying this dogbreed's handler verbatim (as train.py writes it); the
    weights are a placeholder: the check comes before any of them is read."""
    copy_code(dest)
    (dest / "model.pth").write_bytes(b"")
    (dest / "classes.json").write_text(json.dumps({"classes": [{"index": 0, "label": "Beagle", "folder": "Beagle"}]}))
    (dest / "hyperparameters.json").write_text(json.dumps({"arch": "mobilenet_v2", "num_classes": 1}))
    return dest


def _pack(model_dir: Path, target: Path) -> Path:
    with tarfile.open(target, "w:gz") as archive:
        for path in sorted(model_dir.rglob("*")):
            archive.add(path, arcname=str(path.relative_to(model_dir)), recursive=False)
    return target


def test_the_reference_is_the_installed_package():
    digests = installed_handler()
    assert "inference.py" in digests and "breedkit/checkpoints.py" in digests
    assert not any("__pycache__" in name or name.endswith(".pyc") for name in digests)
    assert len(digests) == 1 + sum(
        1 for p in (SOURCE_DIR / "breedkit").rglob("*") if p.is_file() and "__pycache__" not in p.parts
    )


def test_our_own_handler_passes_and_every_change_is_named(tmp_path):
    model = _model_dir(tmp_path / "model")
    assert code_differences(model) == []
    (model / "code" / "__pycache__").mkdir()
    (model / "code" / "__pycache__" / "inference.cpython-311.pyc").write_bytes(b"loaded instead of the source")
    assert code_differences(model) == ["code/__pycache__/inference.cpython-311.pyc is not part of dogbreed's handler"]
    shutil.rmtree(model / "code" / "__pycache__")

    with open(model / "code" / "inference.py", "a") as handler:
        handler.write("\nimport os; os.system('echo owned')\n")
    (model / "code" / "extra.py").write_text("print('hi')\n")
    (model / "code" / "breedkit" / "presets.py").unlink()
    (model / "code" / "breedkit" / "link.py").symlink_to("/etc/hostname")
    assert code_differences(model) == [
        "code/breedkit/link.py is a link",
        "code/inference.py differs from this dogbreed's",
        "code/extra.py is not part of dogbreed's handler",
        "code/breedkit/presets.py is missing",
    ]
    with pytest.raises(UntrustedCodeError, match=r"--trust-code") as raised:
        check_handler_code(model, "m.tar.gz", trusted=False)
    assert isinstance(raised.value, UsageError) and "and 1 more" in str(raised.value)
    assert len(check_handler_code(model, "m.tar.gz", trusted=True)) == 4


def test_a_file_appended_to_inference_py_never_runs_at_deploy(tmp_path):
    model = _model_dir(tmp_path / "model")
    marker = tmp_path / "ran"
    with open(model / "code" / "inference.py", "a") as handler:
        handler.write(f"\nfrom pathlib import Path as _P\n_P({str(marker)!r}).touch()\n")
    archive = _pack(model, tmp_path / "model.tar.gz")
    workspace = tmp_path / ".dogbreed"
    result = dogbreed_cli(
        "deploy", "--model", str(archive), "--port", "0", "--json", "--set", f"workspace={workspace}", cwd=tmp_path, timeout=300
    )
    assert result.returncode == 2 and result.stdout == ""
    line = result.stderr.strip()
    assert len(line.splitlines()) == 1
    assert "code/inference.py differs" in line and "--trust-code" in line
    assert not marker.exists() and servers_under(tmp_path) == []
    assert not list((workspace / "endpoints").rglob("model"))  # nothing extracted is left


def test_trust_code_serves_a_foreign_handler_and_says_so(tmp_path, stub_model_dir):
    workspace = tmp_path / ".dogbreed"
    common = ["--model", str(stub_model_dir), "--port", "0", "--json", "--set", f"workspace={workspace}"]
    refused = dogbreed_cli("deploy", *common, cwd=tmp_path, timeout=300)
    assert refused.returncode == 2 and "code/inference.py differs" in refused.stderr
    assert "code/breedkit/" in refused.stderr  # the stub has no breedkit: missing files are named
    trusted = dogbreed_cli("deploy", *common, "--trust-code", cwd=tmp_path, timeout=300)
    try:
        assert trusted.returncode == 0, trusted.stderr
        assert "warning: --trust-code: serving" in trusted.stderr
        assert json.loads(trusted.stdout)["state"] == "in-service"
    finally:
        down = dogbreed_cli("teardown", "--all", "--yes", "--json", "--set", f"workspace={workspace}", cwd=tmp_path)
        assert down.returncode == 0, down.stderr


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.fixture
def breedkit():
    sys.path.insert(0, str(SOURCE_DIR))
    try:
        from breedkit import artifacts, models

        yield models, artifacts
    finally:
        sys.path.remove(str(SOURCE_DIR))


@pytest.mark.parametrize("form", ["raw-pickle", "torch-zip", "inside-a-state-dict"])
@pytest.mark.parametrize("file", ["model.pth", "imagenet_head.pth"])
def test_pickle_payloads_in_weight_files_are_refused(tmp_path, breedkit, form, file):
    models, artifacts = breedkit
    marker = tmp_path / "ran"
    path = tmp_path / file
    if form == "raw-pickle":
        path.write_bytes(pickle.dumps(_Payload(marker)))
    elif form == "torch-zip":
        torch.save(_Payload(marker), path)
    else:
        torch.save({"weight": torch.zeros(1), "bias": _Payload(marker)}, path)
    with pytest.raises(Exception, match="(?i)weights.only|unpickl|Unsupported"):
        if file == "model.pth":
            models.load_trained("mobilenet_v3_small", 2, path)
        else:
            artifacts.load_imagenet_head(tmp_path)
    assert not marker.exists()


def test_the_check_reads_no_fifo(tmp_path):
    import os

    model = _model_dir(tmp_path / "model")
    os.mkfifo(model / "code" / "breedkit" / "pipe.py")
    assert code_differences(model) == [
        "code/breedkit/pipe.py is not a regular file (a FIFO (named pipe)); refused before reading"
    ]
    shutil.rmtree(model)
