""" "Is it a dog?": the served model's dog probability, from the pretrained ImageNet classifier
saved beside it, on real photos of dogs and of other animals that are not from ImageNet."""

from __future__ import annotations

import importlib
import json
import re
import shutil
import sys
from pathlib import Path

import pytest

from dogbreed.config.schema import Config
from tests.serving.model_factory import torch_threads

PETS = Path(__file__).resolve().parents[1] / "fixtures" / "aipnd-256"
OTHER_ANIMALS = {"cat", "Rabbit", "fox_squirrel", "gecko", "great_horned_owl", "polar_bear", "skunk"}


def _is_dog(photo: Path) -> bool:
    return re.sub(r"_\d+\.jpg$", "", photo.name) not in OTHER_ANIMALS


@pytest.fixture(scope="module")
def handler(model_dir):
    sys.path.insert(0, str(model_dir / "code"))
    try:
        sys.modules.pop("inference", None)
        module = importlib.import_module("inference")
        with torch_threads(1):
            yield module, module.model_fn(str(model_dir))
    finally:
        sys.path.remove(str(model_dir / "code"))
        sys.modules.pop("inference", None)


def _dog_probability(handler, photo: Path, accept: str = "application/json") -> float | None:
    module, model = handler
    text, _ = module.output_fn(module.predict_fn(module.input_fn(photo.read_bytes(), "image/jpeg"), model), accept)
    return json.loads(text)["predictions"][0]["dog_probability"]


def test_at_the_default_threshold_every_other_animal_is_flagged_and_the_dogs_are_not(handler):
    threshold = Config().deploy.dog_threshold
    photos = sorted(PETS.glob("*.jpg"))
    dogs = [p for p in photos if _is_dog(p)]
    others = [p for p in photos if not _is_dog(p)]
    assert (len(dogs), len(others)) == (30, 10)
    dog_scores = {p.name: _dog_probability(handler, p) for p in dogs}
    other_scores = {p.name: _dog_probability(handler, p) for p in others}
    assert all(score < threshold for score in other_scores.values()), other_scores
    assert sum(score >= threshold for score in dog_scores.values()) >= 28, dog_scores
    assert all(0.0 <= score <= 1.0 for score in [*dog_scores.values(), *other_scores.values()])


def test_the_dog_probability_is_the_imagenet_heads_mass_on_the_dog_breeds(handler):
    """Recomputed independently: the whole model's backbone, the saved 1000-way head, a
    softmax, the sum over ImageNet's indices 151-268."""
    import torch
    from PIL import Image

    module, model = handler
    photo = PETS / "cat_01.jpg"
    with Image.open(photo) as image:
        x = model.transform(module.presets.to_rgb(image)).unsqueeze(0)
    with torch.no_grad():
        features = model.backbone(x)
        plain = torch.softmax(model.imagenet_head(features), 1)[0, 151:269].sum().item()
        mirror = torch.softmax(model.imagenet_head(model.backbone(x.flip(-1))), 1)[0, 151:269].sum().item()
    expected = (plain + mirror) / 2 if model.tta == "flip" else plain
    assert _dog_probability(handler, photo) == pytest.approx(expected, abs=1e-5)


def test_a_model_without_an_imagenet_head_says_so(model_dir, tmp_path):
    """null, never a made-up value (e.g. a model trained from weights: none)."""
    bare = tmp_path / "model"
    shutil.copytree(model_dir, bare)
    (bare / "imagenet_head.pth").unlink()
    sys.path.insert(0, str(bare / "code"))
    try:
        sys.modules.pop("inference", None)
        module = importlib.import_module("inference")
        with torch_threads(1):
            loaded = module.model_fn(str(bare))
            assert _dog_probability((module, loaded), PETS / "Beagle_01125.jpg") is None
    finally:
        sys.path.remove(str(bare / "code"))
        sys.modules.pop("inference", None)


def test_flip_tta_serves_the_mean_of_the_photo_and_its_mirror(model_dir, tmp_path):
    import torch
    from PIL import Image

    flipped = tmp_path / "model"
    shutil.copytree(model_dir, flipped)
    hyperparameters = json.loads((flipped / "hyperparameters.json").read_text())
    (flipped / "hyperparameters.json").write_text(json.dumps({**hyperparameters, "tta": "flip"}))
    sys.path.insert(0, str(flipped / "code"))
    try:
        sys.modules.pop("inference", None)
        module = importlib.import_module("inference")
        with torch_threads(1):
            model = module.model_fn(str(flipped))
            photo = PETS / "Collie_03797.jpg"
            prediction = module.predict_fn(module.input_fn(photo.read_bytes(), "image/jpeg"), model)
            with Image.open(photo) as image:
                x = model.transform(module.presets.to_rgb(image)).unsqueeze(0)
            with torch.no_grad():
                expected = (torch.softmax(model.network(x), 1) + torch.softmax(model.network(x.flip(-1)), 1)) / 2
    finally:
        sys.path.remove(str(flipped / "code"))
        sys.modules.pop("inference", None)
    assert model.tta == "flip"
    torch.testing.assert_close(prediction.probabilities, expected, rtol=1e-4, atol=1e-5)
