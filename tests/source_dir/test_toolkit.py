"""source_dir/train.py run by the real sagemaker-training toolkit, the way the SageMaker
PyTorch training container runs it: `python -m sagemaker_training.cli.train` (the module
behind the image's `train` command) reads /opt/ml/input/config, unpacks the
sagemaker_submit_directory tarball into /opt/ml/code, sets the SM_* variables and runs
sagemaker_program with every other hyperparameter as a flag. SAGEMAKER_BASE_DIR stands in
for /opt/ml; SM_STUDIO_LOCAL_MODE skips the wait for the cluster's DNS names.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import torch

from tests.source_dir.conftest import SOURCE_DIR, THREADS


def _flags_to_hyperparameters(flags: list[str]) -> dict[str, object]:
    pairs = dict(zip(flags[::2], flags[1::2]))
    out: dict[str, object] = {}
    for flag, text in pairs.items():
        key = flag.removeprefix("--")
        for cast in (int, float):
            try:
                out[key] = cast(text)
                break
            except ValueError:
                continue
        else:
            out[key] = {"true": True, "false": False}.get(text, text)
    return out


def _source_tarball(dest: Path) -> Path:
    """What the SageMaker SDK uploads as sourcedir.tar.gz: the source_dir's contents."""
    with tarfile.open(dest, "w:gz") as tar:
        for path in sorted(SOURCE_DIR.rglob("*")):
            if "__pycache__" not in path.parts and path.is_file():
                tar.add(path, arcname=str(path.relative_to(SOURCE_DIR)))
    return dest


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if "__pycache__" not in p.parts)


@pytest.mark.slow
@pytest.mark.toolkit
def test_sagemaker_training_toolkit_runs_train_py_like_the_container(
    tmp_path, channel, common_flags, imagenet_weights, reference_run
):
    base = tmp_path / "opt" / "ml"
    config = base / "input" / "config"
    config.mkdir(parents=True)
    data = base / "input" / "data"
    data.mkdir()
    (data / "training").symlink_to(channel, target_is_directory=True)
    (data / "weights").mkdir()
    (data / "weights" / imagenet_weights.name).write_bytes(imagenet_weights.read_bytes())

    hyperparameters = _flags_to_hyperparameters(common_flags)
    hyperparameters["weights"] = imagenet_weights.name  # resolved in the weights channel
    hyperparameters.update(
        sagemaker_program="train.py",
        sagemaker_submit_directory=str(_source_tarball(tmp_path / "sourcedir.tar.gz")),
        sagemaker_region="us-east-1",
        sagemaker_job_name="dogbreed-toolkit-test",
        sagemaker_container_log_level=20,
    )
    # The SDK JSON-encodes every value (sagemaker.estimator: _json_encode_hyperparameters);
    # the toolkit decodes them, so booleans reach train.py as 'True' / 'False'.
    (config / "hyperparameters.json").write_text(json.dumps({k: json.dumps(v) for k, v in hyperparameters.items()}))
    (config / "resourceconfig.json").write_text(
        json.dumps({"current_host": "algo-1", "hosts": ["algo-1"], "network_interface_name": "eth0"})
    )
    channel_config = {"TrainingInputMode": "File", "S3DistributionType": "FullyReplicated", "RecordWrapperType": "None"}
    (config / "inputdataconfig.json").write_text(json.dumps({"training": channel_config, "weights": channel_config}))

    env = {k: v for k, v in os.environ.items() if not k.startswith(("SM_", "SAGEMAKER_"))}
    env.update(SAGEMAKER_BASE_DIR=str(base), SM_STUDIO_LOCAL_MODE="true", OMP_NUM_THREADS=THREADS)
    proc = subprocess.run(
        [sys.executable, "-m", "sagemaker_training.cli.train"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-6000:]
    assert (base / "output" / "success").exists()
    assert "--feature-cache True" in log  # what the toolkit really passed, and train.py accepted

    model_dir = base / "model"
    assert _tree(model_dir) == _tree(reference_run.model_dir)
    assert (model_dir / "classes.json").read_text() == (reference_run.model_dir / "classes.json").read_text()
    ours = torch.load(model_dir / "model.pth", weights_only=True)
    reference = torch.load(reference_run.model_dir / "model.pth", weights_only=True)
    assert ours.keys() == reference.keys()
    assert all(torch.equal(ours[k], reference[k]) for k in ours)
    written = json.loads((model_dir / "hyperparameters.json").read_text())
    assert written["weights"] == imagenet_weights.name
    reference_hps = json.loads((reference_run.model_dir / "hyperparameters.json").read_text())
    assert written["weights_identity"] == reference_hps["weights_identity"]
    metrics = json.loads((base / "output" / "data" / "metrics.json").read_text())
    assert metrics["history"] == reference_run.metrics()["history"]
    assert (base / "checkpoints" / "checkpoint.pth").exists()  # beside the model dir when /opt/ml/checkpoints is absent
