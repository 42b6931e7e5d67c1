"""What the model gets wrong on its test split, computed once by the job (evaluation.json).

Pure functions of the test predictions (class probabilities, true labels, photo paths):
top-1 and top-5 accuracy, per-breed precision/recall/support, the most-confused pairs of
breeds, calibration (expected calibration error over equal-width confidence bins and the
bins themselves, for a reliability diagram), and the photos the model got most confidently
wrong. `thumbnail` makes the small inline JPEGs the report shows for those, so the report
needs no access to the dataset (on SageMaker it lives in S3).
"""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from .classes import BreedClass
from .presets import to_rgb

EVALUATION_FILE = "evaluation.json"
FORMAT = 1
CALIBRATION_BINS = 10
THUMBNAIL_SIDE = 96


def _round(value: float) -> float:
    return round(float(value), 6)


def confusion_matrix(predicted: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """[true, predicted] counts, int64."""
    flat = labels * num_classes + predicted
    return torch.bincount(flat, minlength=num_classes * num_classes).view(num_classes, num_classes)


def per_class(confusion: torch.Tensor, classes: list[BreedClass]) -> list[dict[str, Any]]:
    """Support, precision and recall of every breed; accuracy is recall (the share of the
    breed's photos named right); precision is None for a breed never predicted."""
    correct = confusion.diag()
    support = confusion.sum(1)
    predicted = confusion.sum(0)
    rows = []
    for c in classes:
        i = c.index
        recall = _round(correct[i] / support[i]) if support[i] else None
        rows.append(
            {
                "index": i,
                "label": c.label,
                "support": int(support[i]),
                "correct": int(correct[i]),
                "accuracy": recall,
                "recall": recall,
                "precision": _round(correct[i] / predicted[i]) if predicted[i] else None,
            }
        )
    return rows


def confused_pairs(confusion: torch.Tensor, classes: list[BreedClass], limit: int = 10) -> list[dict[str, Any]]:
    """The pairs of breeds mistaken for each other most often, both directions counted."""
    off = confusion.clone()
    off.fill_diagonal_(0)
    both = torch.triu(off + off.T, diagonal=1)
    pairs = sorted(((int(both[a, b]), a, b) for a, b in both.nonzero().tolist()), key=lambda t: (-t[0], t[1], t[2]))
    return [
        {
            "a": classes[a].label,
            "b": classes[b].label,
            "a_as_b": int(off[a, b]),
            "b_as_a": int(off[b, a]),
            "total": total,
        }
        for total, a, b in pairs[:limit]
    ]


def calibration(confidence: torch.Tensor, correct: torch.Tensor, bins: int = CALIBRATION_BINS) -> dict[str, Any]:
    """Expected calibration error (Guo et al., 2017): the count-weighted mean gap between
    confidence and accuracy over `bins` equal-width confidence bins; and the bins."""
    edges = torch.linspace(0, 1, bins + 1)
    # Bin i holds confidences in (edge i, edge i+1]; a confidence of exactly 0 joins the first.
    which = torch.clamp(torch.bucketize(confidence, edges, right=False) - 1, 0, bins - 1)
    rows, ece = [], 0.0
    for i in range(bins):
        mask = which == i
        count = int(mask.sum())
        mean_conf = float(confidence[mask].mean()) if count else None
        accuracy = float(correct[mask].float().mean()) if count else None
        if count:
            ece += count / len(confidence) * abs(mean_conf - accuracy)
        rows.append(
            {
                "lower": _round(edges[i]),
                "upper": _round(edges[i + 1]),
                "count": count,
                "confidence": None if mean_conf is None else _round(mean_conf),
                "accuracy": None if accuracy is None else _round(accuracy),
            }
        )
    return {"ece": _round(ece), "bins": rows}


def thumbnail(path: Path, side: int = THUMBNAIL_SIDE) -> str | None:
    """A small JPEG of the photo as a data: URI, or None when it cannot be read."""
    try:
        with Image.open(path) as image:
            image.draft("RGB", (side * 2, side * 2))  # JPEG: decode at a reduced scale
            rgb = to_rgb(image)
            rgb.thumbnail((side, side))
            buffer = io.BytesIO()
            rgb.save(buffer, format="JPEG", quality=80)
    except (OSError, ValueError, SyntaxError):
        return None
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def evaluate(
    probabilities: torch.Tensor,
    labels: torch.Tensor,
    classes: list[BreedClass],
    paths: list[str],
    *,
    root: Path | None = None,
    worst: int = 12,
    pairs: int = 10,
) -> dict[str, Any]:
    """evaluation.json's content from the test split's [N, C] probabilities (rows in the
    order of `labels` and `paths`). With `root` the worst mistakes carry thumbnails."""
    probabilities = probabilities.float().cpu()
    labels = labels.cpu()
    n, num_classes = probabilities.shape
    confidence, predicted = probabilities.max(1)
    correct = predicted == labels
    k = min(5, num_classes)
    top5 = (probabilities.topk(k, dim=1).indices == labels.unsqueeze(1)).any(1)
    true_probability = probabilities[torch.arange(n), labels]
    confusion = confusion_matrix(predicted, labels, num_classes)
    wrong = (~correct).nonzero().flatten().tolist()
    wrong.sort(key=lambda i: (-float(confidence[i]), paths[i]))
    mistakes = []
    for i in wrong[:worst]:
        mistakes.append(
            {
                "path": paths[i],
                "true": classes[int(labels[i])].label,
                "predicted": classes[int(predicted[i])].label,
                "probability": _round(confidence[i]),
                "true_probability": _round(true_probability[i]),
                "thumbnail": thumbnail(root / paths[i]) if root is not None else None,
            }
        )
    nonzero = confusion.nonzero().tolist()
    return {
        "format": FORMAT,
        "split": "test",
        "num_images": n,
        "num_classes": num_classes,
        "top1": _round(correct.float().mean()) if n else None,
        "top5": _round(top5.float().mean()) if n else None,
        "loss": _round(-true_probability.clamp_min(1e-12).log().mean()) if n else None,
        "per_class": per_class(confusion, classes),
        "confused_pairs": confused_pairs(confusion, classes, pairs),
        "calibration": calibration(confidence, correct),
        "worst_mistakes": mistakes,
        # Sparse [true, predicted, count] triples: the whole matrix, for anyone who wants it.
        "confusion": [[t, p, int(confusion[t, p])] for t, p in nonzero],
    }
