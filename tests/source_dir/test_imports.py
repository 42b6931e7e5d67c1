"""source_dir ships into containers that have torch, torchvision, Pillow and numpy and
nothing of the host: it must not import anything else (psutil and smdebug only lazily,
when present)."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap

from tests.source_dir.conftest import SOURCE_DIR, TRAIN_PY

ALLOWED_THIRD_PARTY = {"torch", "torchvision", "PIL", "numpy"}
OPTIONAL = {"psutil", "smdebug", "sagemaker_inference"}  # imported inside try/except ImportError
LOCAL = {"breedkit", "inference", "train"}
FORBIDDEN = ("dogbreed", "pydantic", "yaml", "typer", "rich", "boto3", "botocore", "sagemaker")


def _imports(path) -> list[tuple[str, bool]]:
    """(top-level module, guarded by `except ImportError`) for every import in a file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    guarded: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(
            isinstance(h.type, ast.Name) and h.type.id in ("ImportError", "ModuleNotFoundError") for h in node.handlers
        ):
            guarded.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name.split(".")[0], id(node) in guarded) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.module.split(".")[0], id(node) in guarded))
    return found


def test_source_dir_imports_only_the_allowed_modules():
    files = sorted(SOURCE_DIR.rglob("*.py"))
    assert TRAIN_PY in files and len(files) > 5
    problems = []
    for path in files:
        for module, guarded in _imports(path):
            if module in sys.stdlib_module_names or module in LOCAL or module in ALLOWED_THIRD_PARTY:
                continue
            if module in OPTIONAL and guarded:
                continue
            problems.append(f"{path.relative_to(SOURCE_DIR)} imports {module}{'' if guarded else ' unguarded'}")
    assert problems == []


def test_train_help_runs_with_the_host_packages_forbidden():
    """--help imports all of train.py's modules; a meta-path finder makes any import of the
    host's packages fail, as it would in the training container."""
    forbid = textwrap.dedent(
        f"""
        import runpy, sys
        FORBIDDEN = {FORBIDDEN!r}

        class Forbid:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in FORBIDDEN:
                    raise ImportError("forbidden in source_dir: " + name)
                return None

        sys.meta_path.insert(0, Forbid())
        sys.argv = [{str(TRAIN_PY)!r}, "--help"]
        sys.path.insert(0, {str(SOURCE_DIR)!r})
        runpy.run_path({str(TRAIN_PY)!r}, run_name="__main__")
        """
    )
    proc = subprocess.run([sys.executable, "-c", forbid], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    for flag in (
        "--lr", "--weight-decay", "--epochs", "--batch-size", "--arch", "--weights", "--freeze", "--seed",
        "--feature-cache", "--augment-views", "--num-workers", "--cache-dir", "--checkpoint-dir", "--max-batches",
        "--data-dir", "--model-dir", "--output-data-dir", "--weights-dir", "--debugger", "--device",
    ):  # fmt: skip
        assert flag in proc.stdout, flag
    for variable in ("SM_CHANNEL_TRAINING", "SM_CHANNEL_WEIGHTS", "SM_MODEL_DIR", "SM_OUTPUT_DATA_DIR"):
        assert variable in proc.stdout, variable
