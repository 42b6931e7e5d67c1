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
from collections.abc import Sequence
from typing import Any

from dogbreed.report.records import Run
from dogbreed.report.tuning import TuningSummary

WIDTH, ROW_HEIGHT, DPI = 10.0, 3.6, 100
TRAIN, VALID, BAD = "#1f77b4", "#ff7f0e", "#d62728"
# A positive series spanning more than this ratio is drawn on a log axis (a diverging loss
# of 1e4 next to a healthy 0.5 would otherwise flatten the healthy part to a line).
LOG_AXIS_RATIO = 100.0
SMOOTHING_STEPS = 10  # rolling median over this many steps for noisy per-step series


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


def _rolling_median(values: Sequence[float], width: int = SMOOTHING_STEPS) -> list[float]:
    out = []
    for i in range(len(values)):
        window = [v for v in values[max(0, i - width + 1) : i + 1] if math.isfinite(v)]
        out.append(statistics.median(window) if window else math.nan)
    return out


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
        by_step.plot(xs, _rolling_median(losses), color=TRAIN, linewidth=2, label=f"train (median of {SMOOTHING_STEPS})")
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
        by_epoch.set_xticks(epochs)
    by_epoch.set(title="Loss per epoch", xlabel="epoch", ylabel="cross-entropy")
    for axis in (by_step, by_epoch):
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
    by_epoch.set_xticks(epochs)
    by_epoch.set(title="Accuracy per epoch", xlabel="epoch", ylabel="accuracy")
    for axis in (by_step, by_epoch):
        axis.set_ylim(-0.02, 1.02)
        axis.grid(alpha=0.3)
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize="small")
    return _png(figure)


def learning_rate_figure(run: Run) -> bytes | None:
    steps = [s for s in run.steps if _finite(s.lr)]
    if not steps:
        return None
    figure, axes = _figure()
    axis = axes[0][0]
    axis.plot([s.index for s in steps], [s.lr for s in steps], color=TRAIN)
    _maybe_log(axis, [s.lr for s in steps])
    axis.set(title="Learning rate", xlabel="step", ylabel="lr")
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
    if any(v > 0 for s in run.steps for v in s.grad_norm.values() if math.isfinite(v)):
        axis.set_yscale("log")  # norms of different groups differ by orders of magnitude
    axis.set(title="Gradient L2 norm per parameter group", xlabel="step", ylabel="norm")
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
    axis.set_xticks([t.number for t in summary.trials])
    axis.grid(alpha=0.3)
    axis.legend(fontsize="small")
    return _png(figure)


def params_figure(summary: TuningSummary, log_params: set[str]) -> bytes | None:
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
        if numeric:
            axis.scatter([x for x, _ in points], [y for _, y in points], color=TRAIN, zorder=3)
            if name in log_params:
                axis.set_xscale("log")
        else:  # categorical: one column per distinct value, in first-seen order
            labels = list(dict.fromkeys(str(x) for x, _ in points))
            axis.scatter([labels.index(str(x)) for x, _ in points], [y for _, y in points], color=TRAIN, zorder=3)
            axis.set_xticks(range(len(labels)), labels)
        axis.set(title=f"{name}{' (log axis)' if name in log_params else ''}", xlabel=name, ylabel=summary.metric)
        axis.grid(alpha=0.3)
    for position in range(len(names), rows * cols):
        axes[position // cols][position % cols].set_visible(False)
    return _png(figure)


def tuning_figures(summary: TuningSummary, log_params: set[str]) -> dict[str, bytes]:
    figures = {}
    for name, png in (("objective", objective_figure(summary)), ("hyperparameters", params_figure(summary, log_params))):
        if png is not None:
            figures[name] = png
    return figures
