"""The model directory that becomes model.tar.gz, laid out so it deploys without repacking:

    model.pth              state_dict of the whole model, float32, CPU tensors
    imagenet_head.pth      the pretrained 1000-way ImageNet classifier the new head replaced
                           ({"weight", "bias"}), when the weights had one: the served model's
                           dog probability (imagenet.DOG_CATEGORIES) reads the same features
    classes.json           index -> breed label and folder (classes.py)
    hyperparameters.json   arch, num_classes, preset, ... (classes.py)
    code/inference.py      the serving hooks (model_fn, input_fn, predict_fn, output_fn)
    code/breedkit/         this package, which inference.py imports

The SageMaker PyTorch inference container puts code/ on sys.path and loads
code/inference.py, so the model needs nothing from the training job's source_dir.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .atomic import atomic_write
from .classes import CLASSES_FILE, HYPERPARAMETERS_FILE, BreedClass, write_classes, write_hyperparameters

MODEL_FILE = "model.pth"
IMAGENET_HEAD_FILE = "imagenet_head.pth"
CODE_DIR = "code"
INFERENCE_FILE = "inference.py"
PACKAGE_DIR = Path(__file__).resolve().parent
SOURCE_DIR = PACKAGE_DIR.parent


def save_state_dict(path: Path, model: nn.Module) -> Path:
    # contiguous(): conv weights may be channels_last in memory (engine.memory_format).
    state = {
        k: (v.detach().float() if v.is_floating_point() else v.detach()).cpu().contiguous() for k, v in model.state_dict().items()
    }
    return atomic_write(path, lambda handle: torch.save(state, handle))


def copy_code(model_dir: Path, source_dir: Path = SOURCE_DIR) -> list[str]:
    """code/inference.py (when the source dir has one) and code/breedkit/. Returns warnings."""
    code = Path(model_dir) / CODE_DIR
    package = code / PACKAGE_DIR.name
    if package.exists():
        shutil.rmtree(package)
    code.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source_dir / PACKAGE_DIR.name, package, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    inference = source_dir / INFERENCE_FILE
    if inference.is_file():
        shutil.copy2(inference, code / INFERENCE_FILE)
        return []
    return [f"{inference} not found: the model directory has no {CODE_DIR}/{INFERENCE_FILE} and cannot be deployed"]


def write_model_dir(
    model_dir: Path,
    model: nn.Module,
    classes: list[BreedClass],
    hyperparameters: dict[str, Any],
    source_dir: Path = SOURCE_DIR,
    imagenet_head: nn.Linear | None = None,
) -> None:
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    save_state_dict(model_dir / MODEL_FILE, model)
    if imagenet_head is not None:
        save_state_dict(model_dir / IMAGENET_HEAD_FILE, imagenet_head)
    else:
        (model_dir / IMAGENET_HEAD_FILE).unlink(missing_ok=True)  # a rerun into the same dir
    write_classes(model_dir, classes)
    write_hyperparameters(model_dir, hyperparameters)
    for warning in copy_code(model_dir, source_dir):
        print(f"warning: {warning}", file=sys.stderr, flush=True)


def load_imagenet_head(model_dir: str | Path) -> nn.Linear | None:
    """The ImageNet classifier saved beside the model, or None when the model has none."""
    path = Path(model_dir) / IMAGENET_HEAD_FILE
    if not path.is_file():
        return None
    state = torch.load(path, map_location="cpu", weights_only=True)
    weight, bias = state["weight"], state["bias"]
    head = nn.Linear(weight.shape[1], weight.shape[0])
    head.load_state_dict({"weight": weight.float(), "bias": bias.float()})
    return head


def check_model_dir(model_dir: Path) -> list[str]:
    """What keeps `model_dir` from deploying, one sentence per problem; [] when it is whole."""
    model_dir = Path(model_dir)
    problems = []
    for name in (MODEL_FILE, CLASSES_FILE, HYPERPARAMETERS_FILE):
        if not (model_dir / name).is_file():
            problems.append(f"{model_dir / name} is missing: the training job did not finish writing the model")
    if not (model_dir / CODE_DIR / INFERENCE_FILE).is_file():
        problems.append(
            f"{model_dir / CODE_DIR / INFERENCE_FILE} is missing: train.py copies source_dir/{INFERENCE_FILE} "
            "when it exists; add it to the source dir and train again"
        )
    if not (model_dir / CODE_DIR / PACKAGE_DIR.name / "__init__.py").is_file():
        problems.append(f"{model_dir / CODE_DIR / PACKAGE_DIR.name} is missing: inference.py imports it")
    return problems
