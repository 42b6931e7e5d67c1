"""The evaluation sections, timing table and plot fixes, on chosen numbers (the real job's
evaluation.json is checked in test_evaluation_real.py)."""

from __future__ import annotations

import base64
import io
import json
import re
from dataclasses import replace

import pytest
from PIL import Image

from dogbreed.report import evaluation, page, plots
from dogbreed.report.tuning import Trial, TuningSummary
from dogbreed.workflows.report import evaluation_blocks
from tests.report.builders import evals, meta, run, steps
from tests.report.test_page_and_plots import EXTERNAL


def _jpeg_uri(colour: tuple[int, int, int], size: tuple[int, int] = (96, 72)) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="JPEG")
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _evaluation(thumbnails: list[str | None]) -> dict:
    """Three breeds, ten test photos; the per-class rows match the confusion triples."""
    confusion = [[0, 0, 3], [0, 1, 1], [1, 1, 3], [1, 0, 2], [2, 2, 1]]
    return {
        "format": 1,
        "split": "test",
        "num_images": 10,
        "num_classes": 3,
        "top1": 0.7,
        "top5": 1.0,
        "loss": 0.81234,
        "per_class": [
            {"index": 0, "label": "Beagle", "support": 4, "correct": 3, "accuracy": 0.75, "recall": 0.75, "precision": 0.6},
            {"index": 1, "label": "Basset hound", "support": 5, "correct": 3, "accuracy": 0.6, "recall": 0.6, "precision": 0.75},
            {"index": 2, "label": "Boxer", "support": 1, "correct": 1, "accuracy": 1.0, "recall": 1.0, "precision": 1.0},
        ],
        "confused_pairs": [{"a": "Beagle", "b": "Basset hound", "a_as_b": 1, "b_as_a": 2, "total": 3}],
        "calibration": {
            "ece": 0.1,
            "bins": [{"lower": i / 10, "upper": (i + 1) / 10, "count": 0, "confidence": None, "accuracy": None} for i in range(7)]
            + [
                {"lower": 0.7, "upper": 0.8, "count": 4, "confidence": 0.75, "accuracy": 0.5},
                {"lower": 0.8, "upper": 0.9, "count": 3, "confidence": 0.85, "accuracy": 0.667},
                {"lower": 0.9, "upper": 1.0, "count": 3, "confidence": 0.95, "accuracy": 1.0},
            ],
        },
        "worst_mistakes": [
            {
                "path": f"test/x/{i}.jpg",
                "true": "Basset hound",
                "predicted": "Beagle",
                "probability": 0.9 - i / 10,
                "true_probability": 0.05,
                "thumbnail": thumb,
            }  # fmt: skip
            for i, thumb in enumerate(thumbnails)
        ],
        "confusion": confusion,
    }


def test_evaluation_json_is_read_and_anything_but_an_inline_image_is_dropped(tmp_path):
    good = _jpeg_uri((200, 30, 30))
    bad = ["https://example.com/x.jpg", 'data:image/jpeg;base64,AAAA" onerror="alert(1)', "data:text/html;base64,PGI+"]
    (tmp_path / "evaluation.json").write_text(json.dumps(_evaluation([good, *bad, None])))
    read, problem = evaluation.read_evaluation(tmp_path)
    assert problem is None
    assert [m["thumbnail"] for m in read["worst_mistakes"]] == [good, None, None, None, None]
    assert evaluation.read_evaluation(tmp_path / "nowhere") == (None, None)
    (tmp_path / "evaluation.json").write_text('{"format": 99}')
    assert "format 99" in evaluation.read_evaluation(tmp_path)[1]
    (tmp_path / "evaluation.json").write_text("{cut sho")
    assert "not readable JSON" in evaluation.read_evaluation(tmp_path)[1]


def test_evaluation_sections_render_pairs_breeds_reliability_and_thumbnails():
    thumbs = [_jpeg_uri((200, 30, 30)), _jpeg_uri((30, 30, 200)), None]
    data = _evaluation(thumbs)
    reliability = plots.reliability_figure(evaluation.calibration_bins(data), 0.1)
    html = page.render("Job", [("job", "j")], sections=evaluation_blocks(data, reliability))
    assert not EXTERNAL.search(html)
    pairs = re.search(r'<section id="confused-pairs">(.*?)</section>', html).group(1)
    assert '<td>Beagle</td><td>Basset hound</td><td class="num">1</td><td class="num">2</td>' in pairs
    breeds = re.search(r'<section id="per-breed">(.*?)</section>', html).group(1)
    # Worst recognised first: Basset hound (60 %), Beagle (75 %), Boxer (100 %).
    assert re.findall(r"<tr><td>([^<]+)</td>", breeds) == ["Basset hound", "Beagle", "Boxer"]
    assert '<td class="num">75.0%</td><td class="num">60.0%</td><td class="num">75.0%</td><td class="num">4</td>' in breeds
    gallery = re.search(r'<section id="worst-mistakes">(.*?)</section>', html).group(1)
    embedded = re.findall(r'src="data:image/jpeg;base64,([^"]+)"', gallery)
    assert len(embedded) == 2 and gallery.count('class="missing"') == 1
    for data_b64, colour in zip(embedded, ((200, 30, 30), (30, 30, 200))):
        with Image.open(io.BytesIO(base64.b64decode(data_b64))) as image:
            assert image.format == "JPEG" and image.size == (96, 72)
            assert all(abs(a - b) < 12 for a, b in zip(image.convert("RGB").getpixel((48, 36)), colour))
    assert "true: Basset hound" in gallery and "predicted: Beagle (90.0%)" in gallery
    assert 'id="reliability"' in html and "ECE" in html


def test_an_evaluation_without_mistakes_or_pairs_says_so():
    data = {**_evaluation([]), "confused_pairs": []}
    html = page.render("Job", [], sections=evaluation_blocks(data, None))
    assert "No test photo was mistaken for another breed." in html and "named every test photo right" in html


def test_timing_rows_follow_the_jobs_phases_and_add_up():
    phases = {"writing": 0.5, "startup": 3.0, "training": 100.0, "features": 96.5, "custom": 0.0}
    rows = evaluation.timing_rows(phases)
    assert [r[0] for r in rows] == ["startup", "features", "training", "writing", "custom", "total"]
    assert rows[2][1:3] == ["1 min 40 s", "50%"] and rows[-1][1] == "3 min 20 s"
    # metrics.json wins; the records' final record is the fallback; junk values are dropped.
    assert evaluation.timing({"timing": {"setup": 1.0}}, {"timing": {"setup": 9.0}}) == {"setup": 1.0}
    assert evaluation.timing(None, {"timing": {"setup": 9.0, "bad": "x"}}) == {"setup": 9.0}
    assert evaluation.timing(None, None) == {}


def test_rolling_median_is_centred_and_its_window_shrinks_with_the_run():
    assert plots.smoothing_width(400) == plots.SMOOTHING_STEPS
    assert plots.smoothing_width(12) == 3 and plots.smoothing_width(2) == 1
    # A drop at step 20 of 40: a trailing median of 10 shows it 5 steps late; ours on time.
    values = [2.0] * 20 + [1.0] * 20
    smoothed = plots.rolling_median(values)
    assert smoothed[19] == 2.0 and smoothed[21] == 1.0
    short = [3.0, 2.0, 1.0, 0.5, 0.4, 0.3, 0.2, 0.1]  # 8 steps: window 2, it follows the fall
    assert plots.rolling_median(short) == pytest.approx([3.0, 2.5, 1.5, 0.75, 0.45, 0.35, 0.25, 0.15])


@pytest.fixture
def figures(monkeypatch):
    """The plot functions return the matplotlib Figure instead of its PNG, to inspect axes."""
    monkeypatch.setattr(plots, "_png", lambda figure: figure)
    return plots


def test_epoch_step_and_trial_axes_have_whole_number_ticks_only(figures):
    many = run([meta()], steps([2.0 - 0.01 * i for i in range(130)], per_epoch=10), evals([1.0] * 13, [1.1] * 13))
    short = run([meta()], steps([2.0, 1.9, 1.8, 1.7, 1.6, 1.5], per_epoch=3), evals([1.0, 0.9], [1.1, 1.0]))
    drawn = [figures.loss_figure(r) for r in (many, short)] + [figures.accuracy_figure(r) for r in (many, short)]
    for figure in drawn:
        for axis in figure.axes:
            ticks = [t for t in axis.get_xticks() if axis.get_xlim()[0] <= t <= axis.get_xlim()[1]]
            assert ticks and all(float(t).is_integer() for t in ticks), (axis.get_title(), ticks)
    trials = [Trial(i, f"t{i}", "Completed", {"lr": 10.0**-i}, 0.1 * i) for i in range(1, 4)]
    objective = figures.objective_figure(TuningSummary("t", "local", "Random", "valid_acc", True, {}, trials))
    assert all(float(t).is_integer() for t in objective.axes[0].get_xticks())


def test_a_constant_learning_rate_has_no_plot_and_a_schedule_does(figures):
    constant = run(steps([1.0, 0.9, 0.8], lr=0.001))
    assert figures.constant_learning_rate(constant) == 0.001 and figures.learning_rate_figure(constant) is None
    constant.steps[2] = replace(constant.steps[2], lr=0.0005)  # a schedule
    assert figures.constant_learning_rate(constant) is None and figures.learning_rate_figure(constant) is not None


def test_gradient_norm_axis_is_log_only_when_the_norms_span_decades(figures):
    within = figures.gradient_figure(run(steps([1.0] * 6, grad=[0.5, 0.8, 1.2, 0.9, 0.7, 0.6])))
    assert within.axes[0].get_yscale() == "linear"
    spanning = figures.gradient_figure(run(steps([1.0] * 6, grad=[0.01, 0.1, 1.0, 10.0, 50.0, 100.0])))
    assert spanning.axes[0].get_yscale() == "log"


def test_categorical_parameters_are_plotted_as_categories(figures):
    trials = [
        Trial(1, "a", "Completed", {"lr_schedule": "cosine", "batch_size": 64}, 0.5),
        Trial(2, "b", "Completed", {"lr_schedule": "constant", "batch_size": 16}, 0.6),
        Trial(3, "c", "Completed", {"lr_schedule": "cosine", "batch_size": 32}, 0.7),
    ]
    summary = TuningSummary("t", "local", "Random", "valid_acc", True, {}, trials)
    figure = figures.params_figure(summary, set(), {"batch_size"})
    by_title = {axis.get_title(): axis for axis in figure.axes if axis.get_visible()}
    assert [t.get_text() for t in by_title["lr_schedule"].get_xticklabels()] == ["cosine", "constant"]
    assert [t.get_text() for t in by_title["batch_size"].get_xticklabels()] == ["16", "32", "64"]
    offsets = by_title["batch_size"].collections[0].get_offsets()
    assert [tuple(p) for p in offsets] == [(2.0, 0.5), (0.0, 0.6), (1.0, 0.7)]


def test_reliability_figure_needs_a_filled_bin():
    assert plots.reliability_figure([{"lower": 0.0, "upper": 0.1, "count": 0, "confidence": None, "accuracy": None}]) is None
    png = plots.reliability_figure(evaluation.calibration_bins(_evaluation([])), 0.1)
    with Image.open(io.BytesIO(png)) as image:
        assert image.format == "PNG" and image.width >= 800
