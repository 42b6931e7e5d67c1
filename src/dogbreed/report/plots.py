"""The report's figures as PNG bytes, drawn with matplotlib's Agg renderer.

matplotlib is imported inside the functions (never at module import), so `dogbreed --help`
and every other command stay free of it. Figures are built with `Figure` directly rather
than pyplot: no global state, no GUI backend chosen behind our back, nothing to close.
Each function returns only figures it has data for; a missing figure is not an error.
"""

from __future__ import annotations

import io
import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from dogbreed.report.records import Run
from dogbreed.report.tuning import TuningSummary

WIDTH, ROW_HEIGHT, DPI = 10.0, 3.6, 100
TRAIN, VALID, BAD = "#1f77b4", "#ff7f0e", "#d62728"
# A positive series spanning more than this ratio is drawn on a log axis (a diverging loss
# of 1e4 next to a healthy 0.5 would otherwise flatten the healthy part to a line).
LOG_AXIS_RATIO = 100.0
SMOOTHING_STEPS = 10  # rolling median over at most this many steps for noisy per-step series
# ...and over at most this share of the run: a 10-step window on a 12-step run would be one
# flat line. The window is centred, so the median follows the data instead of trailing it.
SMOOTHING_SHARE = 0.25


def _figure(rows: int = 1, cols: int = 1) -> tuple[Any, Any]:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(WIDTH, ROW_HEIGHT * rows), dpi=DPI, layout="constrained")
    axes = figure.subplots(rows, cols, squeeze=False)
    return figure, axes


def _png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    # Fixed metadata keeps the bytes stable between runs of the same data.
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _maybe_log(axis: Any, values: Sequence[float | None]) -> None:
    positive = [v for v in values if _finite(v) and v > 0]
    if positive and max(positive) / min(positive) > LOG_AXIS_RATIO:
        axis.set_yscale("log")


def smoothing_width(count: int) -> int:
    """Steps in the rolling median of a series of `count` steps: shrinks with short runs."""
    return max(1, min(SMOOTHING_STEPS, int(count * SMOOTHING_SHARE)))


def rolling_median(values: Sequence[float], width: int | None = None) -> list[float]:
    """Centred rolling median (no lag: a drop at step k shows at step k), nan-tolerant."""
    width = smoothing_width(len(values)) if width is None else width
    before = width // 2  # an even window leans back half a step, never forward
    after = width - 1 - before
    out = []
    for i in range(len(values)):
        window = [v for v in values[max(0, i - before) : i + after + 1] if math.isfinite(v)]
        out.append(statistics.median(window) if window else math.nan)
    return out


def _whole_numbers(axis: Any) -> None:
    """Ticks on whole numbers only: there is no epoch 2.5, no step 7.5, no trial 1.5."""
    from matplotlib.ticker import MaxNLocator

    axis.xaxis.set_major_locator(MaxNLocator(integer=True))


def constant_learning_rate(run: Run) -> float | None:
    """The learning rate when it never changed over the run's steps (a plot of it says nothing)."""
    rates = {s.lr for s in run.steps if _finite(s.lr)}
    return rates.pop() if len(rates) == 1 else None


def _mark_non_finite(axis: Any, xs: Sequence[float], label: str) -> None:
    """Red ticks along the top where a value was nan/inf (the recorder writes them as null)."""
    if xs:
        transform = axis.get_xaxis_transform()  # x in data units, y in axes fraction
        axis.scatter(xs, [0.97] * len(xs), marker="x", color=BAD, transform=transform, label=label, zorder=5)


def loss_figure(run: Run) -> bytes | None:
    if not run.steps and not run.evaluations:
        return None
    figure, axes = _figure(1, 2)
    by_step, by_epoch = axes[0][0], axes[0][1]
    steps = [s for s in run.steps if s.loss is not None]
    if steps:
        xs = [s.index for s in steps]
        losses = [s.loss for s in steps]
        by_step.plot(xs, losses, color=TRAIN, alpha=0.3, linewidth=1, label="train (batch)")
        width = smoothing_width(len(losses))
        by_step.plot(xs, rolling_median(losses, width), color=TRAIN, linewidth=2, label=f"train (median of {width})")
        _mark_non_finite(by_step, [s.index for s in steps if not math.isfinite(s.loss)], "nan/inf")
        _maybe_log(by_step, losses)
    ends = [e for e in run.evaluations if e.end_index is not None]
    if ends:
        by_step.plot([e.end_index for e in ends], [e.valid_loss for e in ends], "o-", color=VALID, label="valid (epoch)")
    by_step.set(title="Loss per step", xlabel="step", ylabel="cross-entropy")
    if run.evaluations:
        epochs = [e.epoch for e in run.evaluations]
        by_epoch.plot(epochs, [e.train_loss for e in run.evaluations], "o-", color=TRAIN, label="train")
        by_epoch.plot(epochs, [e.valid_loss for e in run.evaluations], "o-", color=VALID, label="valid")
        _maybe_log(by_epoch, [e.train_loss for e in run.evaluations] + [e.valid_loss for e in run.evaluations])
        non_finite = [
            e.epoch for e in run.evaluations if any(v is not None and not math.isfinite(v) for v in (e.train_loss, e.valid_loss))
        ]
        _mark_non_finite(by_epoch, non_finite, "nan/inf")
    by_epoch.set(title="Loss per epoch", xlabel="epoch", ylabel="cross-entropy")
    for axis in (by_step, by_epoch):
        _whole_numbers(axis)
        axis.grid(alpha=0.3)
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize="small")
    return _png(figure)


def accuracy_figure(run: Run) -> bytes | None:
    evaluations = [e for e in run.evaluations if e.train_acc is not None or e.valid_acc is not None]
    if not evaluations:
        return None
    figure, axes = _figure(1, 2)
    by_step, by_epoch = axes[0][0], axes[0][1]
    ends = [e for e in evaluations if e.end_index is not None]
    if ends:
        by_step.plot([e.end_index for e in ends], [e.train_acc for e in ends], "o-", color=TRAIN, label="train")
        by_step.plot([e.end_index for e in ends], [e.valid_acc for e in ends], "o-", color=VALID, label="valid")
    by_step.set(title="Accuracy against steps (end of each epoch)", xlabel="step", ylabel="accuracy")
    epochs = [e.epoch for e in evaluations]
    by_epoch.plot(epochs, [e.train_acc for e in evaluations], "o-", color=TRAIN, label="train")
    by_epoch.plot(epochs, [e.valid_acc for e in evaluations], "o-", color=VALID, label="valid")
    by_epoch.set(title="Accuracy per epoch", xlabel="epoch", ylabel="accuracy")
    for axis in (by_step, by_epoch):
        _whole_numbers(axis)
        axis.set_ylim(-0.02, 1.02)
        axis.grid(alpha=0.3)
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize="small")
    return _png(figure)


def learning_rate_figure(run: Run) -> bytes | None:
    steps = [s for s in run.steps if _finite(s.lr)]
    if not steps or constant_learning_rate(run) is not None:
        return None  # the report says "constant at X" in one line instead
    figure, axes = _figure()
    axis = axes[0][0]
    axis.plot([s.index for s in steps], [s.lr for s in steps], color=TRAIN)
    _maybe_log(axis, [s.lr for s in steps])
    axis.set(title="Learning rate", xlabel="step", ylabel="lr")
    _whole_numbers(axis)
    axis.grid(alpha=0.3)
    return _png(figure)


def gradient_figure(run: Run) -> bytes | None:
    groups = sorted({group for step in run.steps for group in step.grad_norm})
    if not groups:
        return None
    figure, axes = _figure()
    axis = axes[0][0]
    bad_xs = []
    for group in groups:
        points = [(s.index, s.grad_norm[group]) for s in run.steps if group in s.grad_norm]
        axis.plot([x for x, _ in points], [y for _, y in points], label=group, linewidth=1.2)
        bad_xs += [x for x, y in points if not math.isfinite(y)]
    _mark_non_finite(axis, sorted(set(bad_xs)), "nan/inf")
    # Log only when the norms span decades (groups of different sizes, a divergence); within
    # one decade a log axis shows a single unlabelled tick and reads worse than a linear one.
    _maybe_log(axis, [v for s in run.steps for v in s.grad_norm.values()])
    if axis.get_yscale() == "log":
        axis.grid(alpha=0.15, which="minor")
    axis.set(title="Gradient L2 norm per parameter group", xlabel="step", ylabel="norm")
    _whole_numbers(axis)
    axis.grid(alpha=0.3)
    axis.legend(fontsize="small", ncol=2)
    return _png(figure)


def step_time_figure(run: Run) -> bytes | None:
    steps = [s for s in run.steps if _finite(s.data_time) and _finite(s.compute_time)]
    if not steps:
        return None
    rates = [(s.index, s.images_per_sec) for s in steps if _finite(s.images_per_sec)]
    figure, axes = _figure(2 if rates else 1, 1)
    axis = axes[0][0]
    xs = [s.index for s in steps]
    axis.stackplot(
        xs,
        [s.data_time for s in steps],
        [s.compute_time for s in steps],
        labels=["waiting for data", "compute (forward, backward, step)"],
        colors=[BAD, TRAIN],
        alpha=0.7,
    )
    axis.set(title="Step time breakdown", xlabel="step", ylabel="seconds")
    _whole_numbers(axis)
    axis.grid(alpha=0.3)
    axis.legend(fontsize="small", loc="upper right")
    if rates:
        speed = axes[1][0]
        speed.plot([x for x, _ in rates], [y for _, y in rates], color="black", linewidth=1)
        speed.set(title="Throughput (all processes)", xlabel="step", ylabel="images per second")
        speed.grid(alpha=0.3)
    return _png(figure)


def utilisation_figure(run: Run) -> bytes | None:
    samples = run.samples
    if not samples:
        return None
    start = run.start_time or samples[0].time
    gpu = any(s.gpu_util is not None or s.gpu_mem_mb is not None for s in samples)
    figure, axes = _figure(2 if gpu else 1, 2)
    xs = [s.time - start for s in samples]
    panels = [
        (axes[0][0], [s.cpu_percent for s in samples], "CPU of the training process", "% (100 = one core)"),
        (axes[0][1], [s.rss_mb for s in samples], "Memory (resident)", "MiB"),
    ]
    if gpu:
        panels += [
            (axes[1][0], [s.gpu_util for s in samples], "GPU utilisation", "%"),
            (axes[1][1], [s.gpu_mem_mb for s in samples], "GPU memory allocated", "MiB"),
        ]
    for axis, values, title, unit in panels:
        points = [(x, v) for x, v in zip(xs, values) if v is not None]
        axis.plot([x for x, _ in points], [v for _, v in points], "o-", markersize=3, color=TRAIN)
        axis.set(title=title, xlabel="seconds since start", ylabel=unit)
        axis.grid(alpha=0.3)
    return _png(figure)


TRAINING_FIGURES = {
    "loss": loss_figure,
    "accuracy": accuracy_figure,
    "learning_rate": learning_rate_figure,
    "gradient_norms": gradient_figure,
    "step_time": step_time_figure,
    "utilisation": utilisation_figure,
}


def training_figures(run: Run) -> dict[str, bytes]:
    """name -> PNG for every training figure the records have data for, in page order."""
    figures = {}
    for name, draw in TRAINING_FIGURES.items():
        png = draw(run)
        if png is not None:
            figures[name] = png
    return figures


def objective_figure(summary: TuningSummary) -> bytes | None:
    scored = summary.scored
    if not scored:
        return None
    figure, axes = _figure()
    axis = axes[0][0]
    axis.scatter([t.number for t in scored], [t.objective for t in scored], color=TRAIN, label="trial", zorder=3)
    best_so_far, running = [], None
    for trial in scored:
        better = running is None or (trial.objective > running if summary.maximize else trial.objective < running)
        running = trial.objective if better else running
        best_so_far.append(running)
    axis.step([t.number for t in scored], best_so_far, where="post", color=VALID, label="best so far")
    best = max(scored, key=lambda t: t.objective) if summary.maximize else min(scored, key=lambda t: t.objective)
    axis.scatter(
        [best.number],
        [best.objective],
        s=160,
        facecolors="none",
        edgecolors=BAD,
        linewidths=2,
        label=f"best: {best.name}",
        zorder=4,
    )
    axis.set(
        title=f"{summary.metric} per trial ({'higher' if summary.maximize else 'lower'} is better)",
        xlabel="trial",
        ylabel=summary.metric,
    )
    _whole_numbers(axis)
    axis.grid(alpha=0.3)
    axis.legend(fontsize="small")
    return _png(figure)


def params_figure(summary: TuningSummary, log_params: set[str], categorical: set[str] = frozenset()) -> bytes | None:
    scored, names = summary.scored, summary.param_names
    if not scored or not names:
        return None
    cols = min(2, len(names))
    rows = math.ceil(len(names) / cols)
    figure, axes = _figure(rows, cols)
    for position, name in enumerate(names):
        axis = axes[position // cols][position % cols]
        points = [(t.params.get(name), t.objective) for t in scored if t.params.get(name) is not None]
        numeric = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x, _ in points)
        if numeric and name not in categorical:
            axis.scatter([x for x, _ in points], [y for _, y in points], color=TRAIN, zorder=3)
            if name in log_params:
                axis.set_xscale("log")
        else:  # categorical: one column per distinct value (numbers in order, else first seen)
            values = list(dict.fromkeys(x for x, _ in points))
            if numeric:
                values.sort()
            labels = [str(x) for x in values]
            axis.scatter([labels.index(str(x)) for x, _ in points], [y for _, y in points], color=TRAIN, zorder=3)
            axis.set_xticks(range(len(labels)), labels)
            axis.set_xlim(-0.5, len(labels) - 0.5)
        axis.set(title=f"{name}{' (log axis)' if name in log_params else ''}", xlabel=name, ylabel=summary.metric)
        axis.grid(alpha=0.3)
    for position in range(len(names), rows * cols):
        axes[position // cols][position % cols].set_visible(False)
    return _png(figure)


def tuning_figures(summary: TuningSummary, log_params: set[str], categorical: set[str] = frozenset()) -> dict[str, bytes]:
    figures = {}
    drawn = (("objective", objective_figure(summary)), ("hyperparameters", params_figure(summary, log_params, categorical)))
    for name, png in drawn:
        if png is not None:
            figures[name] = png
    return figures


def reliability_figure(bins: Sequence[Mapping[str, Any]], ece: float | None = None) -> bytes | None:
    """Reliability diagram: accuracy against confidence per bin (a calibrated model sits on
    the diagonal), and how many test photos fell in each bin."""
    filled = [b for b in bins if b.get("count") and _finite(b.get("accuracy")) and _finite(b.get("confidence"))]
    if not filled:
        return None
    figure, axes = _figure(1, 2)
    diagram, counts = axes[0][0], axes[0][1]
    lefts = [float(b["lower"]) for b in filled]
    widths = [float(b["upper"]) - float(b["lower"]) for b in filled]
    diagram.bar(lefts, [b["accuracy"] for b in filled], width=widths, align="edge", color=TRAIN, edgecolor="white",
                label="accuracy in the bin")  # fmt: skip
    gaps = [b["confidence"] - b["accuracy"] for b in filled]
    diagram.bar(lefts, gaps, bottom=[b["accuracy"] for b in filled], width=widths, align="edge", color=BAD, alpha=0.35,
                edgecolor=BAD, label="gap to its mean confidence")  # fmt: skip
    diagram.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
    title = "Reliability diagram" + (f" (ECE {ece:.3f})" if _finite(ece) else "")
    diagram.set(title=title, xlabel="confidence (top-1 probability)", ylabel="accuracy", xlim=(0, 1), ylim=(0, 1))
    diagram.legend(fontsize="small", loc="upper left")
    diagram.grid(alpha=0.3)
    counts.bar(lefts, [b["count"] for b in filled], width=widths, align="edge", color=VALID, edgecolor="white")
    counts.set(title="Test photos per confidence bin", xlabel="confidence (top-1 probability)", ylabel="photos", xlim=(0, 1))
    counts.yaxis.get_major_locator().set_params(integer=True)
    counts.grid(alpha=0.3)
    return _png(figure)
