"""The evaluation the real train.py wrote, checked against independent computations, and
carried unchanged by `train --json` and `report --json`."""

from __future__ import annotations

import base64
import io
import json
import re
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from dogbreed.report.records import read_records
from dogbreed.report.verdict import verdict

pytestmark = pytest.mark.slow


def _report(trained, job: str) -> dict:
    result = trained.cli("report", job, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize("which", ["healthy", "diverged"])
def test_evaluation_numbers_agree_with_independent_counts(trained, which):
    job = getattr(trained, which)
    ev, metrics = trained.evaluation(job), trained.metrics(job)
    n = read_records(trained.records(job)).meta["num_test"]
    assert ev["num_images"] == n == 10 and ev["num_classes"] == 10
    confusion = ev["confusion"]
    diagonal = sum(count for t, p, count in confusion if t == p)
    # test_acc is computed by the training loop's own evaluation pass (engine.evaluate), not
    # from the confusion matrix: the two must agree photo for photo.
    assert diagonal == round(metrics["final"]["test_acc"] * n) == round(ev["top1"] * n)
    assert sum(count for _, _, count in confusion) == n
    support, predicted = Counter(), Counter()
    for t, p, count in confusion:
        support[t] += count
        predicted[p] += count
    for row in ev["per_class"]:
        i = row["index"]
        correct = sum(count for t, p, count in confusion if t == p == i)
        assert row["support"] == support[i] and row["correct"] == correct
        assert row["recall"] == row["accuracy"] == (pytest.approx(correct / support[i]) if support[i] else None)
        assert row["precision"] == (pytest.approx(correct / predicted[i]) if predicted[i] else None)
    labels = {row["index"]: row["label"] for row in ev["per_class"]}
    off = Counter({(t, p): c for t, p, c in confusion if t != p})
    # Pairs: both directions summed, a < b, most confused first, at most 10.
    totals = [(off[(a, b)] + off[(b, a)], a, b) for a in labels for b in labels if a < b]
    expected = sorted((t for t in totals if t[0]), key=lambda t: (-t[0], t[1], t[2]))[:10]
    assert [(p["a"], p["b"], p["total"]) for p in ev["confused_pairs"]] == [(labels[a], labels[b], t) for t, a, b in expected]
    for pair in ev["confused_pairs"]:
        a = next(i for i, label in labels.items() if label == pair["a"])
        b = next(i for i, label in labels.items() if label == pair["b"])
        assert (pair["a_as_b"], pair["b_as_a"]) == (off[(a, b)], off[(b, a)])
    # Calibration: the bins hold every photo, their accuracy-weighted sum is top-1, and the ECE
    # is the count-weighted gap between confidence and accuracy.
    bins = ev["calibration"]["bins"]
    assert sum(b["count"] for b in bins) == n
    assert sum(b["count"] * b["accuracy"] for b in bins if b["count"]) == pytest.approx(diagonal, abs=1e-4)
    gap = sum(b["count"] / n * abs(b["confidence"] - b["accuracy"]) for b in bins if b["count"])
    assert ev["calibration"]["ece"] == pytest.approx(gap, abs=1e-5)
    # The worst mistakes are mistakes, most confident first, and there are as many as the
    # confusion matrix has off its diagonal (up to the job's 12).
    mistakes = ev["worst_mistakes"]
    assert len(mistakes) == min(12, n - diagonal)
    assert all(m["true"] != m["predicted"] and m["probability"] >= m["true_probability"] for m in mistakes)
    assert [m["probability"] for m in mistakes] == sorted((m["probability"] for m in mistakes), reverse=True)


def test_train_json_and_report_json_carry_the_jobs_evaluation(trained):
    on_disk = trained.evaluation(trained.healthy)
    assert trained.healthy_answer["evaluation"] == on_disk
    answer = _report(trained, trained.healthy)
    assert answer["evaluation"] == on_disk
    final = trained.metrics(trained.healthy)["final"]
    assert answer["summary"] == {
        "best_epoch": final["best_epoch"],
        "valid_acc": final["valid_acc"],
        "valid_loss": final["valid_loss"],
        "test_acc": final["test_acc"],
        "test_loss": final["test_loss"],
        "test_top5": on_disk["top5"],
    }
    assert answer["timing"] == trained.metrics(trained.healthy)["timing"]
    assert set(answer["timing"]) >= {"setup", "features", "training", "evaluation", "writing"}
    run = read_records(trained.records(trained.healthy))
    assert answer["verdict"] == verdict(run.evaluations, run.meta["num_classes"]).to_json()
    # The verdict's epoch is the one the job kept (ties in valid accuracy go to the lower loss).
    if answer["verdict"]["kind"] == "converged":
        assert answer["verdict"]["epoch"] == final["best_epoch"]
    assert all(rule["advice"] for rule in answer["rules"])  # every row says what to do, or why nothing


def test_the_report_page_shows_the_evaluation_sections(trained):
    job = trained.diverged  # lr 50 gets test photos wrong: there are mistakes to show
    ev = trained.evaluation(job)
    answer = _report(trained, job)
    html = Path(answer["report_uri"]).read_text()
    assert "reliability.png" in {Path(p).name for p in answer["pngs"]}
    assert re.search(r'<p class="verdict" id="verdict">Verdict: ', html)
    assert answer["verdict"]["kind"] == "diverged"  # lr 50: a train loss in the hundreds
    summary = re.search(r'<section id="summary">(.*?)</section>', html).group(1)
    assert "valid (epoch" in summary and "test (reported" in summary
    assert f"{answer['summary']['test_acc']:.1%}" in summary and f"{answer['summary']['valid_acc']:.1%}" in summary
    timing = re.search(r'<section id="timing">(.*?)</section>', html).group(1)
    assert all(f"<td>{phase}</td>" in timing for phase in answer["timing"]) and "<td>total</td>" in timing
    breeds = re.search(r'<section id="per-breed">(.*?)</section>', html).group(1)
    assert breeds.count("<tr><td>") == ev["num_classes"]
    pairs = re.search(r'<section id="confused-pairs">(.*?)</section>', html).group(1)
    assert pairs.count("<tr><td>") == len(ev["confused_pairs"])
    gallery = re.search(r'<section id="worst-mistakes">(.*?)</section>', html).group(1)
    shown = re.findall(r'src="data:image/jpeg;base64,([^"]+)"', gallery)
    assert ev["worst_mistakes"] and len(shown) == len(ev["worst_mistakes"])
    for data, mistake in zip(shown, ev["worst_mistakes"]):
        with Image.open(io.BytesIO(base64.b64decode(data))) as image:
            image.load()
            assert image.format == "JPEG" and max(image.size) <= 96
        assert f"true: {mistake['true']}" in gallery and f"predicted: {mistake['predicted']}" in gallery
