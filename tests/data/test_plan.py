"""The plan's rules on a dogImages-style layout: duplicates across splits, missing splits,
empty classes; pure, with checks given as data."""

from __future__ import annotations

from pathlib import Path

import pytest

from dogbreed.data.images import ImageCheck
from dogbreed.data.layout import detect_layout
from dogbreed.data.plan import plan_dataset
from dogbreed.errors import DogbreedError


def _ok(digest: str) -> ImageCheck:
    return ImageCheck(problem=None, size=10, sha256=digest, stored=Path("/x"), stored_size=10, stored_sha256=digest)


def _plan(files: dict[str, ImageCheck], dirs=()):
    layout = detect_layout(list(files), dirs)
    return plan_dataset(layout, files, 0.1, 0.1, seed=0, where="src")


def test_a_photo_in_train_and_test_is_kept_in_train_only():
    files = {f"{s}/{c}/{c}{i}.jpg": _ok(f"{s}{c}{i}") for s in ("train", "valid", "test") for c in ("A", "B") for i in range(2)}
    files["test/B/leak.jpg"] = _ok("trainA0")
    plan = _plan(files)
    assert plan.problems == [
        {
            "file": "test/B/leak.jpg",
            "problem": "same image (sha256) as train/A/A0.jpg in the train split; excluded so no split evaluates on training data",
        }
    ]
    assert "test/B/leak.jpg" not in {f.path for f in plan.files}
    assert plan.split_counts() == {"train": 4, "valid": 4, "test": 4}


def test_missing_split_and_empty_class_are_reported_and_the_empty_class_dropped():
    files = {f"{s}/A/a{i}.jpg": _ok(f"A{s}{i}") for s in ("train", "valid", "test") for i in range(2)}
    files |= {"train/B/b.jpg": _ok("B1"), "valid/B/b.jpg": _ok("B2")}
    files["train/C/broken.jpg"] = ImageCheck(problem="corrupt or truncated: x", size=3, sha256="C")
    plan = _plan(files)
    assert plan.labels == {"A": "A", "B": "B"}
    assert plan.problems == [
        {"file": "C/", "problem": "class has no usable images; left out of the classes"},
        {"file": "test/B/", "problem": "class has no images in the test split (2 usable in all)"},
        {"file": "train/C/broken.jpg", "problem": "corrupt or truncated: x"},
    ]


def test_stored_paths_always_have_split_folders():
    files = {f"{c}/{i}.jpg": _ok(f"{c}{i}") for c in ("Beagle", "Boxer") for i in range(10)}
    plan = _plan(files)
    assert all(f.path.split("/")[0] == f.split and f.path.split("/")[1] == f.folder for f in plan.files)
    assert plan.split_counts() == {"train": 16, "valid": 2, "test": 2}


def test_fewer_than_two_usable_classes_is_an_error():
    files = {"A/a.jpg": _ok("a"), "B/b.jpg": ImageCheck(problem="empty file")}
    with pytest.raises(DogbreedError, match="only 1 class"):
        _plan(files)
