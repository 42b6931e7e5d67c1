"""What the job's test evaluation (evaluation.json) and wall-time breakdown (metrics.json)
say, read from the job's output folder and turned into tables (pure, apart from reading).

The job writes both files beside records.jsonl (source_dir/train.py, write_outputs); host
code never imports the training package, so the fields are spelled here once more and the
tests read files the real train.py wrote. Reading is tolerant as records.py is: a missing
or unreadable file is a note, never a failed report.

Thumbnails are inlined into the report as they came, but only when they are what the job
writes (a base64 JPEG or PNG data: URI): anything else in a hand-edited or corrupt file is
dropped, so the page's "nothing but data: images" promise holds whatever the file says.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dogbreed.report.page import is_data_image

EVALUATION_FILE = "evaluation.json"
METRICS_FILE = "metrics.json"
FORMAT = 1
# The phases train.py's Stopwatch times, in the order they happen, with what each covers.
PHASES = {
    "startup": "interpreter and imports (torch)",
    "setup": "reading the dataset index, building the network",
    "features": "feature extraction (the frozen backbone over every photo) or data loaders",
    "training": "the epochs: forward, backward, optimiser, validation",
    "evaluation": "the test split, with the weights of the best epoch",
    "writing": "model.pth, classes, code/ and the final records (packing)",
}


def read_json(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """(content, None), (None, None) when the file is absent, or (None, why) when unreadable."""
    if not path.is_file():
        return None, None
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, f"{path.name} is not readable JSON ({exc})"
    if not isinstance(content, dict):
        return None, f"{path.name} is not a JSON object"
    return content, None


def read_evaluation(folder: Path | None) -> tuple[dict[str, Any] | None, str | None]:
    """The job's evaluation.json (as the job wrote it, unsafe thumbnails dropped) and a note."""
    if folder is None:
        return None, None
    content, problem = read_json(folder / EVALUATION_FILE)
    if content is None:
        return None, problem
    if content.get("format") != FORMAT:
        return None, f"{EVALUATION_FILE} has format {content.get('format')!r}; this dogbreed reads format {FORMAT}"
    for mistake in content.get("worst_mistakes") or []:
        if isinstance(mistake, dict) and not is_data_image(mistake.get("thumbnail")):
            mistake["thumbnail"] = None
    return content, None


def read_metrics(folder: Path | None) -> tuple[dict[str, Any] | None, str | None]:
    if folder is None:
        return None, None
    return read_json(folder / METRICS_FILE)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def timing(metrics: Mapping[str, Any] | None, final: Mapping[str, Any] | None = None) -> dict[str, float]:
    """phase -> seconds, from metrics.json, else from the records' final record (same clock)."""
    for source in (metrics, final):
        raw = (source or {}).get("timing")
        if isinstance(raw, dict):
            phases = {str(k): _number(v) for k, v in raw.items()}
            found = {k: v for k, v in phases.items() if v is not None}
            if found:
                return found
    return {}


def _seconds(value: float) -> str:
    if value >= 90:
        minutes, seconds = divmod(value, 60)
        return f"{int(minutes)} min {seconds:02.0f} s"
    return f"{value:.1f} s"


def timing_rows(phases: Mapping[str, float]) -> list[list[str]]:
    """[phase, seconds, share, what it covers], the job's phases first in order, then a total."""
    total = sum(phases.values())
    ordered = [p for p in PHASES if p in phases] + [p for p in phases if p not in PHASES]
    rows = [
        [phase, _seconds(phases[phase]), f"{phases[phase] / total:.0%}" if total else "", PHASES.get(phase, "")]
        for phase in ordered
    ]
    rows.append(["total", _seconds(total), "100%" if total else "", "wall time of train.py, start to finish"])
    return rows


def _fmt(value: Any, digits: str = ".3f") -> str:
    number = _number(value)
    return "" if number is None else format(number, digits)


def _share(value: Any) -> str:
    number = _number(value)
    return "n/a" if number is None else f"{number:.1%}"


def pairs_rows(evaluation: Mapping[str, Any]) -> list[list[str]]:
    rows = []
    for pair in evaluation.get("confused_pairs") or []:
        a, b = str(pair.get("a")), str(pair.get("b"))
        rows.append([a, b, str(pair.get("a_as_b", "")), str(pair.get("b_as_a", "")), str(pair.get("total", ""))])
    return rows


def per_breed_rows(evaluation: Mapping[str, Any]) -> list[list[str]]:
    """Every breed, the worst recognised first (accuracy, then name), so the table's top is
    where to look; breeds without test photos last."""

    def order(row: Mapping[str, Any]) -> tuple[int, float, str]:
        accuracy = _number(row.get("accuracy"))
        return (accuracy is None, accuracy if accuracy is not None else 0.0, str(row.get("label")))

    rows = []
    for row in sorted((r for r in evaluation.get("per_class") or [] if isinstance(r, dict)), key=order):
        rows.append(
            [
                str(row.get("label")),
                _share(row.get("accuracy")),
                _share(row.get("precision")),
                _share(row.get("recall")),
                str(row.get("support", "")),
            ]
        )
    return rows


def headline(evaluation: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The evaluation's few numbers, as facts."""
    calibration = evaluation.get("calibration") or {}
    return [
        ("test photos", str(evaluation.get("num_images", ""))),
        ("top-1 accuracy", _share(evaluation.get("top1"))),
        ("top-5 accuracy", _share(evaluation.get("top5"))),
        ("test loss", _fmt(evaluation.get("loss"), ".4f")),
        ("calibration error (ECE)", _fmt(calibration.get("ece"), ".4f")),
    ]


def mistakes(evaluation: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [m for m in evaluation.get("worst_mistakes") or [] if isinstance(m, dict)]


def calibration_bins(evaluation: Mapping[str, Any]) -> Sequence[Mapping[str, Any]]:
    bins = (evaluation.get("calibration") or {}).get("bins") or []
    return [b for b in bins if isinstance(b, dict)]
