"""The SageMaker SDK and boto3 load only when the sagemaker backend does AWS work."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("sagemaker", "boto3", "botocore", "torch")


@pytest.mark.parametrize(
    "statement",
    [
        # What the CLI runs for --help.
        "from dogbreed.cli.app import run\ntry:\n    run(['--help'])\nexcept SystemExit:\n    pass",
        # What the tune/status/teardown commands import before any AWS work.
        "import dogbreed.backends.sagemaker, dogbreed.aws.describe, dogbreed.aws.pricing, dogbreed.aws.tags",
    ],
)
def test_no_heavy_import(statement):
    probe = f"{statement}\nimport sys\nprint('LOADED=' + ','.join(m for m in {HEAVY!r} if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.splitlines()[-1] == "LOADED="
