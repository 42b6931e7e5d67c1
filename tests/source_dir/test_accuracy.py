"""train.py learns breeds from real photos with the real ImageNet backbone, and the model it
writes is the model it measured."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from tests.source_dir.conftest import run_train

CHANCE = 1 / 10


@pytest.mark.slow
def test_frozen_imagenet_backbone_beats_chance_on_unseen_photos(reference_run):
    final = reference_run.metrics()["final"]
    assert final["test_acc"] >= 3 * CHANCE, final
    assert final["valid_acc"] >= 3 * CHANCE, final
    # The best epoch is chosen on valid and its numbers are the ones reported.
    history = reference_run.metrics()["history"]
    best = max(history, key=lambda row: (row["valid_acc"], -row["valid_loss"]))
    assert final["best_epoch"] == best["epoch"]
    assert final["valid_acc"] == best["valid_acc"]


@pytest.mark.slow
def test_random_weights_do_clearly_worse(tmp_path, channel, common_flags, reference_run):
    flags = list(common_flags)
    flags[flags.index("--weights") + 1] = "none"
    random_run = run_train(tmp_path, channel, *flags)
    imagenet = reference_run.metrics()["final"]
    random = random_run.metrics()["final"]
    assert random["test_acc"] <= imagenet["test_acc"] - 0.3, (random, imagenet)
    assert random["valid_acc"] < imagenet["valid_acc"], (random, imagenet)


@pytest.mark.slow
def test_written_model_reproduces_the_reported_test_accuracy(reference_run, channel, breedkit):
    """The head trained on cached features, inside the whole model, on decoded test photos:
    the artifact is the same model the metrics describe."""
    from breedkit import classes, models, presets

    model_dir = reference_run.model_dir
    hyperparameters = classes.read_hyperparameters(model_dir)
    labels = classes.read_classes(model_dir)
    assert [c.index for c in labels] == list(range(10))
    assert "Beagle" in [c.label for c in labels]  # breed names, not folder names
    model = models.load_trained(hyperparameters["arch"], hyperparameters["num_classes"], model_dir / "model.pth")
    transform = presets.eval_transform(hyperparameters["preset"]["resize"], hyperparameters["preset"]["crop"])
    by_folder = {c.folder: c.index for c in labels}
    correct = total = 0
    for path in sorted((channel / "test").glob("*/*")):
        with Image.open(path) as image:
            x = transform(presets.to_rgb(image)).unsqueeze(0)
        with torch.no_grad():
            correct += int(model(x).argmax(1).item() == by_folder[path.parent.name])
        total += 1
    assert total == 10
    assert correct / total == pytest.approx(reference_run.metrics()["final"]["test_acc"])
