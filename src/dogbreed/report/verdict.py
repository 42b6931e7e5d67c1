"""One line that says what to do next, from the per-epoch metrics history (pure).

The rules (rules.py) each judge one symptom; the verdict reads the whole history the way a
person would before the next run: is valid accuracy still climbing (train longer), did the
valid loss turn while the train loss kept falling (overfitting: stop earlier or regularise),
did it level off (enough epochs), or did the model never fit the training photos at all.
The job keeps the epoch with the best valid accuracy (breedkit/checkpoints.Best), so the
verdict judges valid accuracy first and the valid loss second, as the job does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from dogbreed.report.records import Evaluation

NO_DATA, DIVERGED, TOO_SHORT = "no-data", "diverged", "too-short"
RISING, RISING_OVERCONFIDENT, OVERFITTING, UNDERFITTING, CONVERGED = (
    "still-rising",
    "rising-but-overconfident",
    "overfitting",
    "underfitting",
    "converged",
)
# Valid accuracy must beat every earlier epoch by this much to count as still rising: less
# is one photo's worth of noise on a small valid split, not a trend.
ACC_DELTA = 0.005
# The valid loss must climb this far above its minimum (relative) to call it overfitting; a
# percent or two is noise between epochs.
LOSS_RISE = 0.05
# Below this train accuracy at the best epoch, with valid close behind, the model has not
# learnt the training photos: capacity or learning rate, not epochs or regularisation.
UNDERFIT_TRAIN_ACC = 0.6
UNDERFIT_GAP = 0.05


@dataclass(frozen=True)
class Verdict:
    kind: str
    text: str
    epoch: int | None = None  # the epoch the verdict points at (best, or where overfitting began)

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _pct(value: float) -> str:
    return f"{value:.1%}"


def _epochs(count: int) -> str:
    return f"{count} epoch" + ("" if count == 1 else "s")


def _overconfident(evaluation: Evaluation, num_classes: int) -> bool:
    """Whether a train loss above a uniform guess's is overconfidence rather than divergence:
    the training photos mostly named right, and the loss within what label smoothing charges a
    head that puts ~0 on the other breeds on every photo it gets right (4 breeds, train
    accuracy 100%: loss 1.69 against ln 4 = 1.39). That charge is at most about smoothing x 88
    (the log of float32's smallest probability), 9 at the default 0.1; a loss ten times a
    uniform guess's is beyond it (lr 50: 377 against 2.30, with accuracy climbing)."""
    uniform = math.log(num_classes)
    right = _finite(evaluation.train_acc) and evaluation.train_acc >= 0.5 + 0.5 / num_classes
    return right and evaluation.train_loss <= 10 * uniform


def _unjudged(state: str | None, failure: str | None) -> Verdict:
    """No epoch was evaluated: what the job's state says about why."""
    if state == "Failed":
        why = f" ({failure})" if failure else " (its log says why)"
        return Verdict(NO_DATA, f"the job failed before its first epoch ended{why}: fix that and train again")
    if state in ("Stopped", "Stopping"):
        return Verdict(
            NO_DATA, "the job was stopped before its first epoch ended: train it again with the same --name to resume it"
        )
    if state in ("InProgress", "Starting", "running", "creating"):
        return Verdict(NO_DATA, "the job is still in its first epoch: nothing to judge yet; report again when it has one")
    return Verdict(NO_DATA, "no epoch was evaluated: nothing to judge")


def verdict(
    history: Sequence[Evaluation], num_classes: int | None = None, state: str | None = None, failure: str | None = None
) -> Verdict:
    """The verdict on a run (see _judged), said of a job that failed or was stopped as such."""
    if not history:
        return _unjudged(state, failure)
    judged = _judged(history, num_classes)
    if state == "Failed":
        why = f" ({failure})" if failure else ""
        text = f"the job failed after epoch {history[-1].epoch}{why}; up to there: {judged.text}"
        return Verdict(judged.kind, text, judged.epoch)
    if state in ("Stopped", "Stopping"):
        # Judged as if it had ended there, its advice read as a finished run's.
        text = (
            f"the job was stopped after epoch {history[-1].epoch} (train it again with the same --name to resume it); "
            f"up to there: {judged.text}"
        )
        return Verdict(judged.kind, text, judged.epoch)
    if state in ("InProgress", "Starting", "running", "creating"):
        text = (
            f"the job is still running (epoch {history[-1].epoch} so far; report again when it ends); up to there: {judged.text}"
        )
        return Verdict(judged.kind, text, judged.epoch)
    return judged


def _judged(history: Sequence[Evaluation], num_classes: int | None = None) -> Verdict:
    """The verdict on a run from its evaluations, one per epoch, in epoch order.
    `num_classes` (the run's meta) lets it tell a finite divergence: a train loss that ends
    above that of a uniform guess, ln(classes), with the training photos mostly named wrong,
    has learnt nothing that holds."""
    broken = next((e for e in history if any(v is not None and not math.isfinite(v) for v in (e.train_loss, e.valid_loss))), None)
    if broken is not None:
        return Verdict(
            DIVERGED,
            f"the loss became nan/inf at epoch {broken.epoch}: training diverged; lower train.lr (by 10x) and train again",
            broken.epoch,
        )
    last = history[-1]
    if (
        num_classes
        and num_classes > 1
        and _finite(last.train_loss)
        and last.train_loss > math.log(num_classes)
        and not _overconfident(last, num_classes)
    ):
        return Verdict(
            DIVERGED,
            f"the train loss ends at {last.train_loss:.4g}, above the {math.log(num_classes):.2f} of a uniform guess over "
            f"{num_classes} breeds: training diverged or never started; lower train.lr (by 10x) and train again",
            last.epoch,
        )
    if len(history) == 1:
        return Verdict(
            TOO_SHORT,
            "one epoch only: too short to see a trend; train more epochs (train.epochs) to see where valid accuracy goes",
            last.epoch,
        )

    accs = [e.valid_acc for e in history]
    use_acc = all(_finite(a) for a in accs)
    if not use_acc and not all(_finite(e.valid_loss) for e in history):
        return Verdict(NO_DATA, "the epochs recorded no valid accuracy or loss: nothing to judge the run by", last.epoch)
    # Higher is better on the score: valid accuracy, or the negated valid loss without it.
    scores = accs if use_acc else [-e.valid_loss if _finite(e.valid_loss) else -math.inf for e in history]
    # The epoch the job keeps: best score, ties to the lower valid loss, then the earliest.
    neg_loss = [-e.valid_loss if _finite(e.valid_loss) else -math.inf for e in history]
    best_index = max(range(len(history)), key=lambda i: (scores[i], neg_loss[i], -i))
    best = history[best_index]
    peak = history[min(i for i in range(len(history)) if scores[i] == scores[best_index])]  # first reached
    rising = best_index == len(history) - 1 and scores[-1] > max(scores[:-1]) + (ACC_DELTA if use_acc else 0.0)

    losses = [(e, e.valid_loss) for e in history if _finite(e.valid_loss)]
    overfit_from: Evaluation | None = None
    if losses:
        low, low_loss = min(losses, key=lambda pair: pair[1])
        after = [e for e, _ in losses if e.epoch > low.epoch]
        train_fell = _finite(last.train_loss) and _finite(low.train_loss) and last.train_loss < low.train_loss
        if after and _finite(last.valid_loss) and last.valid_loss > low_loss * (1 + LOSS_RISE) and train_fell:
            overfit_from = after[0]
            turned = (
                f"valid loss rose from {low_loss:.3f} at epoch {low.epoch} to {last.valid_loss:.3f} at epoch {last.epoch} "
                f"while the train loss fell to {last.train_loss:.3f}"
            )

    if rising:
        if use_acc:
            trend = f"valid accuracy still rising at the last epoch ({_pct(history[-2].valid_acc)} -> {_pct(last.valid_acc)})"
        else:
            before = history[-2].valid_loss
            shown = f"{before:.3f}" if _finite(before) else "n/a"
            trend = f"valid loss still falling at the last epoch ({shown} -> {last.valid_loss:.3f})"
        if overfit_from is not None:
            return Verdict(
                RISING_OVERCONFIDENT,
                f"{trend}, but the {turned}: the model grows overconfident; train more epochs with more "
                "regularisation (train.label_smoothing, train.weight_decay)",
                last.epoch,
            )
        return Verdict(RISING, f"{trend}: train more epochs (train.epochs above {last.epoch})", last.epoch)
    if overfit_from is not None:
        return Verdict(
            OVERFITTING,
            f"overfitting from epoch {overfit_from.epoch}: the {turned}; train {overfit_from.epoch - 1} epochs "
            "(train.epochs) or regularise (train.augment_views, train.weight_decay, train.label_smoothing)",
            overfit_from.epoch,
        )
    if (
        use_acc
        and _finite(best.train_acc)
        and best.train_acc < UNDERFIT_TRAIN_ACC
        and best.train_acc - best.valid_acc < UNDERFIT_GAP
    ):
        return Verdict(
            UNDERFITTING,
            f"underfitting: train accuracy only {_pct(best.train_acc)} at the best epoch ({best.epoch}), valid "
            f"{_pct(best.valid_acc)}: the model does not fit even the training photos; raise train.lr, unfreeze "
            "more of the backbone (model.freeze) or try a bigger model.arch",
            best.epoch,
        )
    recipe = "for more accuracy change the recipe (train.lr, model.freeze, model.arch)"
    if not use_acc:
        return Verdict(
            CONVERGED,
            f"the valid loss bottomed out at epoch {best.epoch} ({best.valid_loss:.3f}): "
            f"{_epochs(best.epoch)} are enough (train.epochs={best.epoch}); {recipe}",
            best.epoch,
        )
    if best is last:
        # The last epoch is the best only by a hair (within ACC_DELTA) or by its lower valid loss.
        since = f"since epoch {peak.epoch}" if peak is not last else "at the last epoch"
        return Verdict(
            CONVERGED,
            f"valid accuracy levelled off at {_pct(best.valid_acc)} ({since}; the last epoch is kept for its lower valid "
            f"loss or a gain under {ACC_DELTA:.1%}): more epochs will bring little; {recipe}",
            best.epoch,
        )
    idle = last.epoch - best.epoch
    return Verdict(
        CONVERGED,
        f"valid accuracy peaked at epoch {best.epoch} ({_pct(best.valid_acc)}) and did not improve in the "
        f"{_epochs(idle)} after: {_epochs(best.epoch)} are enough (train.epochs={best.epoch}); {recipe}",
        best.epoch,
    )
