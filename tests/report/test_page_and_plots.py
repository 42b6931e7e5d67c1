"""The page is self-contained and escaped; the plots are real PNGs drawn only from data."""

from __future__ import annotations

import base64
import io
import re
import subprocess
import sys

from PIL import Image

from dogbreed.report import page, plots
from dogbreed.report.rules import ISSUE, OK, RuleResult
from dogbreed.report.tuning import Trial, TuningSummary, log_scaled
from tests.report.builders import evals, meta, run, steps, system

EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//|url\(\s*["']?\s*(?:https?:)?//|@import""", re.I)


def _png_size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "PNG"
        return image.size


def test_training_figures_are_pngs_and_only_those_with_data():
    full = run([meta()], steps([2.0 - 0.03 * i for i in range(30)]), evals([1.8, 1.2, 0.9], [1.9, 1.3, 1.0]), system([None] * 3))
    figures = plots.training_figures(full)
    # The builders' learning rate is constant: one line of text in the report, no figure.
    assert list(figures) == ["loss", "accuracy", "gradient_norms", "step_time", "utilisation"]
    scheduled = [{**record, "lr": 0.001 * (1 - i / 30)} for i, record in enumerate(steps([1.0] * 30))]
    assert list(plots.training_figures(run(scheduled))) == ["loss", "learning_rate", "gradient_norms", "step_time"]
    assert all(_png_size(png)[0] >= 800 for png in figures.values())
    only_evals = plots.training_figures(run(evals([1.0, 0.5], [1.1, 0.6])))
    assert list(only_evals) == ["loss", "accuracy"]
    assert plots.training_figures(run([meta()])) == {}


def test_plots_survive_nan_losses_and_gradients():
    diverged = run(steps([2.0, 50.0, None, None], grad=[1.0, 30.0, None, None]))
    figures = plots.training_figures(diverged)
    assert {"loss", "gradient_norms"} <= set(figures)


def test_gpu_panels_appear_only_with_a_gpu():
    cpu = plots.utilisation_figure(run(system([None] * 3)))
    gpu = plots.utilisation_figure(run([meta(device="cuda:0")], system([80.0, 90.0, 85.0])))
    assert _png_size(gpu)[1] > _png_size(cpu)[1]  # a second row of panels


def _summary() -> TuningSummary:
    trials = [
        Trial(1, "t-001", "Completed", {"lr": 1e-4, "batch_size": 16}, 0.5),
        Trial(2, "t-002", "Completed", {"lr": 1e-2, "batch_size": 32}, 0.8),
        Trial(3, "t-003", "Failed", {"lr": 5e-2, "batch_size": 64}, None, "boom"),
    ]
    return TuningSummary("t", "local", "Bayesian", "valid_acc", True, {"name": "t-002"}, trials)


def test_tuning_figures_and_log_axes():
    summary = _summary()
    assert log_scaled(summary, {"lr": "Logarithmic"}) == {"lr"}
    assert log_scaled(summary, {}) == {"lr"}  # 1e-4..5e-2 spans more than two decades
    assert log_scaled(summary, {"lr": "Linear"}) == set()
    figures = plots.tuning_figures(summary, {"lr"})
    assert list(figures) == ["objective", "hyperparameters"] and all(_png_size(p) for p in figures.values())


def test_page_is_self_contained_escaped_and_forbids_network():
    rules = [
        RuleResult("overfit", ISSUE, "valid <b>loss</b> & more", "Do <this>."),
        RuleResult("LowGPU", OK, "fine", source="sagemaker-debugger"),
    ]
    png = plots.loss_figure(run(steps([1.0, 0.9])))
    html = page.render(
        "Job <x>",
        [("job", "a&b")],
        rules,
        [page.Image("lr", "Learning rate", png)],
        [page.Table("Trials", ["a"], [["<script>alert(1)</script>"]])],
        ["note <i>"],
        [("Debugger", "profiler-report.html")],
    )
    assert '<meta http-equiv="Content-Security-Policy"' in html and "default-src 'none'" in html
    assert "<script" not in html.replace("&lt;script&gt;", "")
    assert "valid &lt;b&gt;loss&lt;/b&gt; &amp; more" in html and "Job &lt;x&gt;" in html
    assert "SageMaker Debugger rules" in html
    assert not EXTERNAL.search(html), EXTERNAL.search(html)
    (embedded,) = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    assert base64.b64decode(embedded) == png


def test_report_modules_import_no_matplotlib_until_a_figure_is_drawn():
    code = (
        "import sys\n"
        "import dogbreed.workflows.report, dogbreed.cli.report\n"
        "from dogbreed.cli.app import run\n"
        "try:\n    run(['report', '--help'])\nexcept SystemExit:\n    pass\n"
        "print('LOADED=' + str('matplotlib' in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "--fail-on-rules" in out.stdout
    assert out.stdout.strip().splitlines()[-1] == "LOADED=False"
