"""The linter keeps the layering (`make lint`, run by CI before the tests): a wrong arrow
brought back into a copy of the package breaks an import contract, and an import of the
host package from the training package breaks ruff's banned-api rule."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _copy(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "src" / "dogbreed", tmp_path / "src" / "dogbreed", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path / "src" / "dogbreed"


def _lint_imports(tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "lint-imports"), "--config", str(tmp_path / "pyproject.toml"), "--no-cache"],
        cwd=tmp_path,
        env={"PYTHONPATH": str(tmp_path / "src"), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_the_tree_keeps_every_import_contract(tmp_path):
    _copy(tmp_path)
    result = _lint_imports(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        # backends knowing the CLI (what get_backend(session) was)
        (
            "backends/__init__.py",
            "from dogbreed.cli.session import Session",
            "dogbreed.backends is not allowed to import dogbreed.cli",
        ),
        # aws above backends (what aws/describe.py and aws/preflight.py did)
        (
            "aws/describe.py",
            "from dogbreed.backends.base import EndpointInfo",
            "dogbreed.aws is not allowed to import dogbreed.backends",
        ),
        # a workflow building its own AWS session (what workflows/ingest.py did)
        (
            "workflows/ingest.py",
            "from dogbreed.aws.session import AwsSession",
            "dogbreed.workflows is not allowed to import dogbreed.aws",
        ),
        # serving reaching AWS
        ("serving/client.py", "import boto3", "dogbreed.serving is not allowed to import boto3"),
    ],
)
def test_a_wrong_arrow_breaks_a_contract(tmp_path, module, line, broken):
    package = _copy(tmp_path)
    target = package / module
    target.write_text(target.read_text() + f"\n{line}  # noqa: E402, F401\n")
    result = _lint_imports(tmp_path)
    assert result.returncode != 0
    assert broken in result.stdout


def test_the_training_package_may_not_import_the_host(tmp_path):
    package = _copy(tmp_path)
    (package / "source_dir" / "breedkit" / "sneaky.py").write_text("from dogbreed.config import Config\n\nprint(Config)\n")
    result = subprocess.run(
        [str(BIN / "ruff"), "check", "--no-cache", str(package / "source_dir")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
    assert "TID251" in result.stdout and "source_dir imports nothing of dogbreed" in result.stdout
