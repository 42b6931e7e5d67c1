"""evaluation.json: each figure against an independent computation, on hand-made predictions
and on a real training run."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
import torch
from PIL import Image


@pytest.fixture
def evaluation(breedkit):
    from breedkit import evaluation

    return evaluation


def _classes(*labels):
    from breedkit.classes import BreedClass

    return [BreedClass(i, label, f"{i:03d}.{label}") for i, label in enumerate(labels)]


def test_figures_match_a_by_hand_count(evaluation):
    classes = _classes("Beagle", "Basset", "Boxer", "Collie")
    # true label, then probabilities over the 4 classes
    rows = [
        (0, [0.7, 0.2, 0.05, 0.05]),  # right
        (0, [0.3, 0.6, 0.05, 0.05]),  # Beagle as Basset (0.6)
        (1, [0.9, 0.05, 0.03, 0.02]),  # Basset as Beagle (0.9): the worst mistake
        (1, [0.1, 0.8, 0.05, 0.05]),  # right
        (2, [0.1, 0.1, 0.5, 0.3]),  # right
        (2, [0.05, 0.05, 0.2, 0.7]),  # Boxer as Collie (0.7)
        (3, [0.0, 0.0, 0.1, 0.9]),  # right
        (0, [0.5, 0.45, 0.03, 0.02]),  # right
    ]
    labels = torch.tensor([t for t, _ in rows])
    probabilities = torch.tensor([p for _, p in rows])
    paths = [f"test/{classes[t].folder}/{i}.jpg" for i, (t, _) in enumerate(rows)]
    report = evaluation.evaluate(probabilities, labels, classes, paths)

    assert report["num_images"] == 8
    assert report["top1"] == pytest.approx(5 / 8)
    assert report["top5"] == pytest.approx(1.0)  # 4 classes: every label is in the top 4
    per = {row["label"]: row for row in report["per_class"]}
    assert per["Beagle"]["support"] == 3 and per["Beagle"]["recall"] == pytest.approx(2 / 3)
    assert per["Beagle"]["precision"] == pytest.approx(2 / 3)  # predicted 3 times, 2 right
    assert per["Collie"]["precision"] == pytest.approx(1 / 2) and per["Collie"]["recall"] == 1.0
    assert per["Boxer"]["accuracy"] == per["Boxer"]["recall"] == pytest.approx(1 / 2)
    assert report["confused_pairs"][0] == {"a": "Beagle", "b": "Basset", "a_as_b": 1, "b_as_a": 1, "total": 2}
    assert report["confused_pairs"][1] == {"a": "Boxer", "b": "Collie", "a_as_b": 1, "b_as_a": 0, "total": 1}
    worst = report["worst_mistakes"]
    assert [(m["true"], m["predicted"], m["probability"]) for m in worst] == [
        ("Basset", "Beagle", 0.9), ("Boxer", "Collie", 0.7), ("Beagle", "Basset", 0.6),
    ]  # fmt: skip
    assert worst[0]["true_probability"] == pytest.approx(0.05)
    # The confusion matrix's diagonal is top-1 x test size; its rows are the supports.
    diagonal = sum(count for t, p, count in report["confusion"] if t == p)
    assert diagonal == round(report["top1"] * report["num_images"])
    loss = -np.mean([np.log(p[t]) for t, p in rows])
    assert report["loss"] == pytest.approx(loss, rel=1e-5)


def test_expected_calibration_error_against_a_loop_over_photos(evaluation):
    g = torch.Generator().manual_seed(1)
    probabilities = torch.softmax(torch.randn(200, 7, generator=g) * 2, dim=1)
    labels = torch.randint(7, (200,), generator=g)
    report = evaluation.evaluate(probabilities, labels, _classes(*"abcdefg"), [f"{i}.jpg" for i in range(200)])
    confidence, predicted = probabilities.max(1)
    ece = 0.0
    for low in np.arange(0, 1, 0.1):
        members = [i for i in range(200) if low < confidence[i] <= low + 0.1 + 1e-12]
        if members:
            gap = np.mean([confidence[i].item() for i in members]) - np.mean([int(predicted[i] == labels[i]) for i in members])
            ece += len(members) / 200 * abs(gap)
    assert report["calibration"]["ece"] == pytest.approx(ece, abs=1e-5)
    assert sum(b["count"] for b in report["calibration"]["bins"]) == 200


def test_worst_mistakes_carry_small_inline_thumbnails(evaluation, dogs_dir):
    photo = sorted(dogs_dir.glob("*/*.jpg"))[0]
    classes = _classes("A", "B")
    relative = str(photo.relative_to(dogs_dir))
    report = evaluation.evaluate(torch.tensor([[0.1, 0.9]]), torch.tensor([0]), classes, [relative], root=dogs_dir)
    uri = report["worst_mistakes"][0]["thumbnail"]
    assert uri.startswith("data:image/jpeg;base64,")
    with Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))) as image:
        assert max(image.size) <= evaluation.THUMBNAIL_SIDE
    missing = evaluation.evaluate(torch.tensor([[0.1, 0.9]]), torch.tensor([0]), classes, ["gone.jpg"], root=dogs_dir)
    assert missing["worst_mistakes"][0]["thumbnail"] is None


@pytest.mark.slow
def test_the_job_writes_the_evaluation_of_the_kept_epoch(reference_run):
    report = json.loads((reference_run.output_dir / "evaluation.json").read_text())
    final = reference_run.metrics()["final"]
    assert report["num_images"] == 10
    assert report["top1"] == pytest.approx(final["test_acc"])
    assert report["loss"] == pytest.approx(final["test_loss"], rel=1e-4)
    assert report["top5"] >= report["top1"]
    assert sum(row["support"] for row in report["per_class"]) == 10
    assert sum(count for t, p, count in report["confusion"] if t == p) == round(final["test_acc"] * 10)
