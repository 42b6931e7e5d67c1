"""A real, small trained model dir in the job contract's layout, built in seconds.

mobilenet_v2 with the vendored ImageNet weights (BatchNorm folded, so eval mode), a new head
for the 10 vendored breeds fitted on backbone features of examples/dogs, saved exactly as
train.py saves it: model.pth, classes.json, hyperparameters.json, code/inference.py +
code/breedkit/, and model.tar.gz of the whole dir. Predictions on examples/predict are then
real breed names and mostly right, and the pretrained ImageNet classifier is saved beside it
(imagenet_head.pth), as train.py saves it, so answers carry a dog probability. breedkit is
imported from the source_dir, as train.py does.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import shutil
import sys
import tarfile
from contextlib import contextmanager
from pathlib import Path

SOURCE_DIR = Path(__file__).resolve().parents[2] / "src" / "dogbreed" / "source_dir"
ARCH = "mobilenet_v2"
PRESET = {"resize": 256, "crop": 224}


def _breedkit():
    if str(SOURCE_DIR) not in sys.path:
        sys.path.insert(0, str(SOURCE_DIR))
    return (importlib.import_module(f"breedkit.{name}") for name in ("classes", "models", "presets", "artifacts"))


def copy_code(model_dir: Path) -> None:
    """code/inference.py and code/breedkit/, as train.py ships them inside the model."""
    code = model_dir / "code"
    code.mkdir(parents=True, exist_ok=True)
    shutil.copy2(SOURCE_DIR / "inference.py", code / "inference.py")
    shutil.copytree(SOURCE_DIR / "breedkit", code / "breedkit", ignore=shutil.ignore_patterns("__pycache__"), dirs_exist_ok=True)


@contextmanager
def torch_threads(count: int):
    """Fewer intra-op threads for a while: on a shared 2-core box, oversubscribed OpenMP
    threads spin against each other and one thread is faster than two."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def build_model_dir(dest: Path, dogs_dir: Path, weights: Path, steps: int = 300) -> Path:
    with torch_threads(1):
        return _build(dest, dogs_dir, weights, steps)


def _fingerprint(dogs_dir: Path, weights: Path, steps: int) -> str:
    digest = hashlib.sha256(f"{steps}".encode())
    sources = [Path(__file__)] + [SOURCE_DIR / "breedkit" / f"{m}.py" for m in ("models", "presets", "classes", "artifacts")]
    for path in [*sources, weights, *sorted(dogs_dir.rglob("*.jpg"))]:
        digest.update(str(path.relative_to(path.parents[1])).encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:16]


def cached_model_dir(dest: Path, cache_root: Path | None, dogs_dir: Path, weights: Path, steps: int = 300) -> Path:
    """build_model_dir, reusing the trained files from an earlier run when nothing they depend
    on changed; code/ is always copied fresh, so handler edits are always what gets served."""
    if cache_root is None:
        return build_model_dir(dest, dogs_dir, weights, steps)
    cached = cache_root / _fingerprint(dogs_dir, weights, steps)
    if not (cached / "model.pth").is_file():
        build_model_dir(dest, dogs_dir, weights, steps)
        staging = cache_root / f"{cached.name}.tmp"
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(dest, staging, ignore=shutil.ignore_patterns("code"))
        staging.rename(cached)
        return dest
    shutil.copytree(cached, dest)
    copy_code(dest)
    return dest


def _build(dest: Path, dogs_dir: Path, weights: Path, steps: int) -> Path:
    import torch
    from PIL import Image

    classes, models, presets, artifacts = _breedkit()
    folders = sorted(p.name for p in dogs_dir.iterdir() if p.is_dir())
    breeds = classes.classes_from_folders(folders)
    torch.manual_seed(0)
    model, imagenet_head = models.build_model_and_source_head(ARCH, len(breeds), str(weights))
    model.eval()
    backbone, head = models.split_backbone_head(model, ARCH)
    transform = presets.eval_transform(PRESET["resize"], PRESET["crop"])

    images, targets = [], []
    for breed in breeds:
        for path in sorted((dogs_dir / breed.folder).glob("*.jpg")):
            with Image.open(path) as image:
                images.append(transform(presets.to_rgb(image)))
            targets.append(breed.index)
    with torch.no_grad():
        features = torch.cat([backbone(torch.stack(images[i : i + 25])) for i in range(0, len(images), 25)])
    labels = torch.tensor(targets)

    linear = head[-1]
    optimizer = torch.optim.AdamW(linear.parameters(), lr=1e-2, weight_decay=1e-2)
    for _ in range(steps):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(linear(features), labels)
        loss.backward()
        optimizer.step()

    dest.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), dest / "model.pth")
    artifacts.save_state_dict(dest / artifacts.IMAGENET_HEAD_FILE, imagenet_head)
    classes.write_classes(dest, breeds)
    hyperparameters = {
        "arch": ARCH,
        "num_classes": len(breeds),
        "weights": weights.name,
        "freeze": "backbone",
        "preset": PRESET,
        "final_train_loss": round(float(loss.detach()), 4),
    }
    (dest / "hyperparameters.json").write_text(json.dumps(hyperparameters, indent=2))
    copy_code(dest)
    return dest


def pack(model_dir: Path, target: Path) -> Path:
    """model.tar.gz with the model dir's files at the archive root (SageMaker's layout)."""
    with tarfile.open(target, "w:gz") as archive:
        for path in sorted(model_dir.rglob("*")):
            if "__pycache__" not in path.parts:
                archive.add(path, arcname=str(path.relative_to(model_dir)), recursive=False)
    return target
