"""The two JSON files that describe a trained model beside its model.pth.

classes.json:          {"classes": [{"index": 0, "label": "Affenpinscher",
                                     "folder": "001.Affenpinscher"}, ...]}
hyperparameters.json:  {"arch", "num_classes", "weights", "freeze", "epochs", "batch_size",
                        "lr", "weight_decay", "seed", "feature_cache", "augment_views",
                        "preset": {"resize", "crop"}, "best_epoch", ...}
inference.py rebuilds the network from hyperparameters.json (arch, num_classes), loads
model.pth into it, and names predictions with classes.json's labels.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .atomic import atomic_write_json

CLASSES_FILE = "classes.json"
HYPERPARAMETERS_FILE = "hyperparameters.json"

# Udacity dogImages '001.Affenpinscher', Stanford Dogs 'n02088364-beagle'.
_FOLDER_PREFIX = re.compile(r"^(?:\d+\.|n\d{8}-)")


@dataclass(frozen=True)
class BreedClass:
    index: int
    label: str
    folder: str


def label_from_folder(folder: str) -> str:
    """'001.Affenpinscher' -> 'Affenpinscher'; 'n02088364-beagle' -> 'Beagle'."""
    label = _FOLDER_PREFIX.sub("", folder).replace("_", " ").strip() or folder
    return label[0].upper() + label[1:]


def classes_from_folders(folders: list[str]) -> list[BreedClass]:
    return [BreedClass(i, label_from_folder(f), f) for i, f in enumerate(sorted(folders))]


def classes_to_json(classes: list[BreedClass]) -> dict[str, Any]:
    return {"classes": [asdict(c) for c in sorted(classes, key=lambda c: c.index)]}


def classes_from_json(raw: dict[str, Any]) -> list[BreedClass]:
    classes = [BreedClass(int(c["index"]), str(c["label"]), str(c.get("folder", c["label"]))) for c in raw["classes"]]
    classes.sort(key=lambda c: c.index)
    if [c.index for c in classes] != list(range(len(classes))):
        raise ValueError("class indices must be 0..N-1 with none missing")
    return classes


def write_classes(model_dir: str | Path, classes: list[BreedClass]) -> Path:
    return atomic_write_json(Path(model_dir) / CLASSES_FILE, classes_to_json(classes))


def read_classes(model_dir: str | Path) -> list[BreedClass]:
    return classes_from_json(json.loads((Path(model_dir) / CLASSES_FILE).read_text()))


def write_hyperparameters(model_dir: str | Path, hyperparameters: dict[str, Any]) -> Path:
    return atomic_write_json(Path(model_dir) / HYPERPARAMETERS_FILE, hyperparameters)


def read_hyperparameters(model_dir: str | Path) -> dict[str, Any]:
    return json.loads((Path(model_dir) / HYPERPARAMETERS_FILE).read_text())
