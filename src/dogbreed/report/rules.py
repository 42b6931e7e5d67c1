"""Rules that judge a training run from its records, the way SageMaker Debugger's did.

Debugger's built-in rules ran in AWS-managed containers over smdebug tensors; Debugger is
closed to new AWS customers and none of it runs locally. These rules are pure functions of
a `Run` (records.py), so they run everywhere, on any job that wrote records.jsonl.

Each rule answers one RuleResult: a verdict, what it saw (detail) and what to do (advice).
Verdicts: ok, issue, not-applicable (the rule does not apply to this run, e.g. GPU rules on
a CPU job), no-data (the records lack what the rule needs).

Thresholds follow Debugger's built-in rule defaults where one exists; each constant says
where it comes from. The docs are at
https://docs.aws.amazon.com/sagemaker/latest/dg/debugger-built-in-rules.html (model rules)
and .../debugger-built-in-profiler-rules.html (profiler rules); the profiler rules' code is
open: github.com/awslabs/sagemaker-debugger, smdebug/profiler/analysis/rules/.
Where our records differ from Debugger's tensors (per-group gradient norms instead of whole
gradient tensors, one evaluation per epoch instead of one per saved step), the comment says
how the default was carried over.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace

from dogbreed.report.records import Run, Sample

OK, ISSUE, NOT_APPLICABLE, NO_DATA = "ok", "issue", "not-applicable", "no-data"
STATUSES = (OK, ISSUE, NOT_APPLICABLE, NO_DATA)

# --- gradients -------------------------------------------------------------------------
# VanishingGradient `threshold` default 0.0000001, applied by Debugger to the mean absolute
# gradient value (docs: vanishing-gradient.html). We record each group's L2 norm, and the
# mean absolute value of n numbers is at most their L2 norm, so a norm below the same
# threshold means the mean absolute value is below it too: we flag no more than Debugger.
VANISHING_THRESHOLD = 1e-7
# ExplodingTensor flags any nan or inf (`only_nan` default False: infinities count too).
# Debugger has no magnitude threshold; by the time a norm is inf the run is lost, so we also
# flag a thousandfold growth of a group's norm from its first steps to its last, an order of
# magnitude beyond what fine-tuning normally shows (norms shrink as the loss falls).
EXPLODING_GROWTH = 1000.0
# Steps compared at each end of the run: LossNotDecreasing's `num_steps` default is 10
# (docs: loss-not-decreasing.html). We compare medians of 10 steps at each end, not single
# steps, because mini-batch losses are noisy; short runs use half their steps per window.
WINDOW_STEPS = 10

# --- loss ------------------------------------------------------------------------------
# LossNotDecreasing `diff_percent` default 0.1: the loss must fall by at least 0.1 %.
LOSS_MIN_DECREASE_PERCENT = 0.1
# LossNotDecreasing `increase_threshold_percent` default 5: a rise of more than 5 % is an
# issue even if it is not a divergence to inf.
LOSS_MAX_INCREASE_PERCENT = 5.0

# --- generalisation (one evaluation per epoch) --------------------------------------------
# Overfit `ratio_threshold` default 0.1: (valid_loss - train_loss) / train_loss above 10 %
# for `patience` (default 1) evaluations from `start_step` (default 0) (docs: overfit.html).
OVERFIT_RATIO = 0.1
OVERFIT_PATIENCE = 1
# Overtraining defaults: `patience_train` 5, `patience_validation` 10 evaluations without an
# improvement of at least `delta` 0.01 (absolute, in loss units) (docs: overtraining.html).
# Debugger counts saved steps; we count our evaluations, which are once per epoch.
OVERTRAIN_PATIENCE_TRAIN = 5
OVERTRAIN_PATIENCE_VALID = 10
OVERTRAIN_DELTA = 0.01

# --- input pipeline and hardware -------------------------------------------------------
# CPUBottleneck and IOBottleneck `threshold` default 50: the rule fires when the bottleneck
# holds more than 50 % of the time (smdebug .../rules/cpu_bottleneck.py). Our records time
# each step's wait for data directly, so the share of step time spent waiting is the measure.
DATALOADER_WAIT_PERCENT = 50.0
# Debugger's `patience` skips the first samples because start-up is not steady state; the
# first step of each epoch also pays for starting the loader's workers, so we skip it.
DATALOADER_SKIP_FIRST_STEP_OF_EPOCH = True
# LowGPUUtilization defaults: `threshold_p95` 70 (95th percentile below it: underused),
# `threshold_p5` 10 (p95 above 70 but 5th percentile below 10: fluctuating)
# (smdebug .../rules/low_gpu_utilization.py).
GPU_P95_MIN = 70.0
GPU_P5_MIN = 10.0
# CPUBottleneck defaults: a sample is a CPU bottleneck when GPU utilisation is below
# `gpu_threshold` 10 while CPU utilisation is above `cpu_threshold` 90; `threshold` 50 (%).
CPU_BOTTLENECK_GPU_BELOW = 10.0
CPU_BOTTLENECK_CPU_ABOVE = 90.0
CPU_BOTTLENECK_PERCENT = 50.0
# Debugger waits for `patience` (1000) samples at 0.5 s; we sample every ~10 s, so we ask
# for a handful taken after the first step instead (start-up excluded, as patience meant).
MIN_SYSTEM_SAMPLES = 3


@dataclass(frozen=True)
class RuleResult:
    name: str
    status: str  # ok | issue | not-applicable | no-data
    detail: str  # what the rule saw, with numbers
    advice: str = ""  # one sentence: what to do; with_advice() says why nothing when a rule found nothing
    source: str = "dogbreed"  # or "sagemaker-debugger" for Debugger's own verdicts

    def to_json(self) -> dict[str, str]:
        return asdict(self)


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _window(count: int) -> int:
    return max(1, min(WINDOW_STEPS, count // 2))


def _fmt(value: float) -> str:
    return f"{value:.4g}"


# --- the rules -------------------------------------------------------------------------


def vanishing_gradient(run: Run) -> RuleResult:
    name = "vanishing_gradient"
    groups = sorted({group for step in run.steps for group in step.grad_norm})
    if not groups:
        return RuleResult(name, NO_DATA, "no gradient norms recorded")
    vanished = []
    for group in groups:
        norms = [s.grad_norm[group] for s in run.steps if _finite(s.grad_norm.get(group))]
        if not norms:
            continue
        tail = statistics.median(norms[-_window(len(norms)) :])
        if tail < VANISHING_THRESHOLD:
            vanished.append(f"{group} ({_fmt(tail)})")
    if vanished:
        return RuleResult(
            name,
            ISSUE,
            f"gradient norm below {VANISHING_THRESHOLD:g} over the last steps: {', '.join(vanished)}",
            "Raise train.lr or check model.freeze: a group whose gradients vanish stops learning.",
        )
    return RuleResult(name, OK, f"{len(groups)} parameter groups, all gradient norms above {VANISHING_THRESHOLD:g}")


def exploding_gradient(run: Run) -> RuleResult:
    name = "exploding_gradient"
    groups = sorted({group for step in run.steps for group in step.grad_norm})
    if not groups:
        return RuleResult(name, NO_DATA, "no gradient norms recorded")
    advice = "Lower train.lr (try ten times smaller) and train again; these weights are not usable."
    for step in run.steps:
        bad = sorted(group for group, norm in step.grad_norm.items() if not math.isfinite(norm))
        if bad:
            return RuleResult(
                name,
                ISSUE,
                f"gradient norm not finite (nan/inf) at epoch {step.epoch} step {step.step}: {', '.join(bad)}",
                advice,
            )
    grown = []
    for group in groups:
        norms = [s.grad_norm[group] for s in run.steps if group in s.grad_norm]
        if len(norms) < 2:
            continue
        width = _window(len(norms))
        head, tail = statistics.median(norms[:width]), statistics.median(norms[-width:])
        if head > 0 and tail / head > EXPLODING_GROWTH:
            grown.append(f"{group} ({_fmt(head)} -> {_fmt(tail)})")
    if grown:
        return RuleResult(name, ISSUE, f"gradient norm grew more than {EXPLODING_GROWTH:g}x: {', '.join(grown)}", advice)
    return RuleResult(name, OK, f"{len(groups)} parameter groups, all gradient norms finite and bounded")


def _losses(run: Run) -> tuple[list[float | None], str]:
    """The run's training losses in order: per step, or per epoch when no steps were recorded."""
    losses = [step.loss for step in run.steps if step.loss is not None]
    if losses:
        return losses, "step"
    return [e.train_loss for e in run.evaluations if e.train_loss is not None], "epoch"


def loss_not_decreasing(run: Run) -> RuleResult:
    name = "loss_not_decreasing"
    losses, unit = _losses(run)
    if len(losses) < 2:
        return RuleResult(name, NO_DATA, f"{len(losses)} training loss value(s) recorded; need at least 2")
    for position, loss in enumerate(losses, start=1):
        if not _finite(loss):
            where = f"{unit} {position}"
            if unit == "step":
                step = [s for s in run.steps if s.loss is not None][position - 1]
                where = f"epoch {step.epoch} step {step.step}"
            return RuleResult(
                name,
                ISSUE,
                f"the training loss became nan/inf at {where}: the run diverged",
                "Lower train.lr (try ten times smaller) and train again.",
            )
    values = [float(v) for v in losses if v is not None]
    width = _window(len(values))
    head, tail = statistics.median(values[:width]), statistics.median(values[-width:])
    # The first value is the loss of the untrained model; a run that ends above it (or above
    # its first steps) has made things worse, however its first steps went.
    start = min(values[0], head)
    if start > 0 and (tail - start) / start * 100 > LOSS_MAX_INCREASE_PERCENT:
        return RuleResult(
            name,
            ISSUE,
            f"the training loss rose from {_fmt(start)} to {_fmt(tail)} (median of the last {width} {unit}s), "
            f"more than {LOSS_MAX_INCREASE_PERCENT:g} %",
            "Lower train.lr (try ten times smaller): a rising loss is the usual sign of a learning rate too high.",
        )
    decrease = (head - tail) / head * 100 if head > 0 else 0.0
    if decrease < LOSS_MIN_DECREASE_PERCENT:
        return RuleResult(
            name,
            ISSUE,
            f"the training loss fell by {decrease:.3g} % ({_fmt(head)} -> {_fmt(tail)}, medians of {width} {unit}s), "
            f"less than {LOSS_MIN_DECREASE_PERCENT:g} %",
            "Raise train.lr or train.epochs, and check that the labels match the photos.",
        )
    return RuleResult(
        name, OK, f"the training loss fell by {decrease:.3g} % ({_fmt(head)} -> {_fmt(tail)}, medians of {width} {unit}s)"
    )


def overfit(run: Run) -> RuleResult:
    name = "overfit"
    pairs = [e for e in run.evaluations if _finite(e.train_loss) and _finite(e.valid_loss) and e.train_loss > 0]
    if not pairs:
        return RuleResult(name, NO_DATA, "no evaluation with finite train and valid loss recorded")
    streak, worst = 0, max(pairs, key=lambda e: (e.valid_loss - e.train_loss) / e.train_loss)
    for evaluation in pairs:
        ratio = (evaluation.valid_loss - evaluation.train_loss) / evaluation.train_loss
        streak = streak + 1 if ratio > OVERFIT_RATIO else 0
        if streak >= OVERFIT_PATIENCE:
            return RuleResult(
                name,
                ISSUE,
                f"at epoch {evaluation.epoch} the valid loss {_fmt(evaluation.valid_loss)} exceeds the train loss "
                f"{_fmt(evaluation.train_loss)} by {ratio:.0%} (threshold {OVERFIT_RATIO:.0%})",
                "Add photos or augmentation (train.augment_views), raise train.weight_decay, or train fewer epochs.",
            )
    ratio = (worst.valid_loss - worst.train_loss) / worst.train_loss
    return RuleResult(
        name, OK, f"valid loss at most {ratio:.0%} above train loss (epoch {worst.epoch}; threshold {OVERFIT_RATIO:.0%})"
    )


def _stalled_for(values: Sequence[float]) -> int:
    """How many evaluations at the end brought no improvement of at least OVERTRAIN_DELTA."""
    best, since = math.inf, 0
    for value in values:
        if value < best - OVERTRAIN_DELTA:
            best, since = value, 0
        else:
            since += 1
    return since


def overtraining(run: Run) -> RuleResult:
    name = "overtraining"
    train = [e.train_loss for e in run.evaluations if _finite(e.train_loss)]
    valid = [e.valid_loss for e in run.evaluations if _finite(e.valid_loss)]
    if not train and not valid:
        return RuleResult(name, NO_DATA, "no evaluation with a finite loss recorded")
    if len(train) <= OVERTRAIN_PATIENCE_TRAIN and len(valid) <= OVERTRAIN_PATIENCE_VALID:
        return RuleResult(
            name,
            NOT_APPLICABLE,
            f"{max(len(train), len(valid))} evaluations: too few to tell (it takes {OVERTRAIN_PATIENCE_TRAIN + 1} "
            f"for the train loss, {OVERTRAIN_PATIENCE_VALID + 1} for the valid loss)",
        )
    advice = "Train fewer epochs (train.epochs): the extra ones cost time and bring nothing."
    stalled_valid = _stalled_for(valid)
    if len(valid) > OVERTRAIN_PATIENCE_VALID and stalled_valid >= OVERTRAIN_PATIENCE_VALID:
        return RuleResult(
            name, ISSUE, f"the valid loss has not improved by {OVERTRAIN_DELTA:g} for {stalled_valid} epochs", advice
        )
    stalled_train = _stalled_for(train)
    if len(train) > OVERTRAIN_PATIENCE_TRAIN and stalled_train >= OVERTRAIN_PATIENCE_TRAIN:
        return RuleResult(
            name, ISSUE, f"the train loss has not improved by {OVERTRAIN_DELTA:g} for {stalled_train} epochs", advice
        )
    return RuleResult(name, OK, f"losses still improving (last improvement {min(stalled_train, stalled_valid)} epoch(s) ago)")


def dataloader_bottleneck(run: Run) -> RuleResult:
    name = "dataloader_bottleneck"
    timed = [s for s in run.steps if _finite(s.data_time) and _finite(s.compute_time)]
    steady = [s for s in timed if s.step != 1] if DATALOADER_SKIP_FIRST_STEP_OF_EPOCH else timed
    steps = steady or timed
    total = sum(s.data_time + s.compute_time for s in steps)
    if not steps or total <= 0:
        return RuleResult(name, NO_DATA, "no step timings recorded")
    wait = sum(s.data_time for s in steps) / total * 100
    detail = f"{wait:.0f} % of step time waiting for data over {len(steps)} steps (threshold {DATALOADER_WAIT_PERCENT:g} %)"
    if wait > DATALOADER_WAIT_PERCENT:
        return RuleResult(
            name,
            ISSUE,
            detail,
            "Raise train.num_workers, keep train.feature_cache on with a frozen backbone, or store smaller photos (data.resize).",
        )
    return RuleResult(name, OK, detail)


def _steady_samples(run: Run) -> list[Sample]:
    """System samples taken once training had started (start-up is not steady state)."""
    first_step = min((s.time for s in run.steps if s.time is not None), default=None)
    if first_step is None:
        return list(run.samples)
    return [sample for sample in run.samples if sample.time >= first_step]


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def low_gpu_utilization(run: Run) -> RuleResult:
    name = "low_gpu_utilization"
    if not run.has_gpu:
        return RuleResult(name, NOT_APPLICABLE, f"no GPU: the job ran on {run.meta.get('device') or 'the CPU'}")
    utils = [s.gpu_util for s in _steady_samples(run) if s.gpu_util is not None]
    if len(utils) < MIN_SYSTEM_SAMPLES:
        return RuleResult(name, NO_DATA, f"{len(utils)} GPU utilisation samples; need {MIN_SYSTEM_SAMPLES}")
    p95, p5 = _percentile(utils, 0.95), _percentile(utils, 0.05)
    detail = f"GPU utilisation p95 {p95:.0f} %, p5 {p5:.0f} % over {len(utils)} samples"
    if p95 < GPU_P95_MIN:
        return RuleResult(
            name,
            ISSUE,
            f"{detail}: underused (p95 below {GPU_P95_MIN:g} %)",
            "Raise train.batch_size or train.num_workers, or choose a smaller instance (sagemaker.instance_type.train).",
        )
    if p5 < GPU_P5_MIN:
        return RuleResult(
            name,
            ISSUE,
            f"{detail}: fluctuating (p5 below {GPU_P5_MIN:g} %)",
            "Feed the GPU steadily: raise train.num_workers or keep train.feature_cache on.",
        )
    return RuleResult(name, OK, detail)


def cpu_bottleneck(run: Run) -> RuleResult:
    name = "cpu_bottleneck"
    if not run.has_gpu:
        return RuleResult(
            name, NOT_APPLICABLE, "no GPU: the CPU does all the work, so being CPU-bound is expected, not a bottleneck"
        )
    # cpu_percent is the training process's (100 = one core busy); Debugger judges the share
    # of the machine's CPU, so divide by the cores the job had (one when the meta omits it).
    cores = run.meta.get("cpu_count") or run.meta.get("num_cpus") or 1
    pairs = [
        (s.gpu_util, s.cpu_percent / cores) for s in _steady_samples(run) if s.gpu_util is not None and s.cpu_percent is not None
    ]
    if len(pairs) < MIN_SYSTEM_SAMPLES:
        return RuleResult(name, NO_DATA, f"{len(pairs)} samples with both CPU and GPU utilisation; need {MIN_SYSTEM_SAMPLES}")
    starved = sum(1 for gpu, cpu in pairs if gpu < CPU_BOTTLENECK_GPU_BELOW and cpu > CPU_BOTTLENECK_CPU_ABOVE)
    share = starved / len(pairs) * 100
    detail = (
        f"{share:.0f} % of {len(pairs)} samples had the GPU below {CPU_BOTTLENECK_GPU_BELOW:g} % while the CPU was above "
        f"{CPU_BOTTLENECK_CPU_ABOVE:g} % (threshold {CPU_BOTTLENECK_PERCENT:g} %)"
    )
    if share > CPU_BOTTLENECK_PERCENT:
        return RuleResult(
            name,
            ISSUE,
            detail,
            "Move work off the CPU: keep train.feature_cache on, raise train.num_workers, or store smaller photos (data.resize).",
        )
    return RuleResult(name, OK, detail)


RULES: tuple[Callable[[Run], RuleResult], ...] = (
    vanishing_gradient,
    exploding_gradient,
    loss_not_decreasing,
    overfit,
    overtraining,
    dataloader_bottleneck,
    low_gpu_utilization,
    cpu_bottleneck,
)


# "What to do" when a rule found nothing to fix: a row with an empty advice cell reads as
# "we forgot", so every row says why there is nothing to do.
_NOTHING_TO_DO_WHEN_OK = {
    "vanishing_gradient": "Nothing to do: every trainable group still gets gradients.",
    "exploding_gradient": "Nothing to do: the gradients stay finite and bounded.",
    "loss_not_decreasing": "Nothing to do: the training loss falls.",
    "overfit": "Nothing to do: valid loss stays close to train loss.",
    "overtraining": "Nothing to do: the losses are still improving, so the epochs are not wasted.",
    "dataloader_bottleneck": "Nothing to do: the data loader keeps up with the compute.",
    "low_gpu_utilization": "Nothing to do: the GPU is kept busy.",
    "cpu_bottleneck": "Nothing to do: the CPU does not hold the GPU back.",
}
_NOTHING_TO_DO = {
    OK: "Nothing to do: no issue found.",
    NOT_APPLICABLE: "Nothing to do: the rule does not apply to this run (see what it saw).",
    NO_DATA: "Nothing to do for this run: it recorded too little for this rule (see what it saw); a longer run is judged.",
}
_DEBUGGER_ADVICE = {
    ISSUE: "Read Debugger's ProfilerReport (under Files) for the rule's own analysis and advice.",
    OK: "Nothing to do: Debugger found no issue.",
    NO_DATA: "Nothing to do yet: Debugger has no verdict (the rule is still running, stopped or errored).",
}


def with_advice(result: RuleResult) -> RuleResult:
    """The result with "what to do" filled: the rule's own advice, else why nothing."""
    if result.advice:
        return result
    if result.source != "dogbreed":
        advice = _DEBUGGER_ADVICE.get(result.status, _NOTHING_TO_DO.get(result.status, ""))
    elif result.status == OK:
        advice = _NOTHING_TO_DO_WHEN_OK.get(result.name, _NOTHING_TO_DO[OK])
    else:
        advice = _NOTHING_TO_DO.get(result.status, "See what the rule saw.")
    return replace(result, advice=advice)


def evaluate(run: Run) -> list[RuleResult]:
    """Every rule's verdict on one run, in a fixed order, each with what to do."""
    return [with_advice(rule(run)) for rule in RULES]


def has_issues(results: Sequence[RuleResult]) -> bool:
    return any(result.status == ISSUE for result in results)
