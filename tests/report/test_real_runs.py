"""The rules on records the real train.py wrote: a healthy run, and one driven to diverge."""

from __future__ import annotations

import math

import pytest

from dogbreed.report import rules
from dogbreed.report.records import read_records
from dogbreed.report.rules import ISSUE, NOT_APPLICABLE, OK

pytestmark = pytest.mark.slow


def _verdicts(path):
    return {r.name: r for r in rules.evaluate(read_records(path))}


def test_records_of_a_real_run_have_what_the_rules_and_plots_need(trained):
    from tests.report.conftest import BATCH, EPOCHS

    run = read_records(trained.records(trained.healthy))
    assert run.problems == []
    assert run.meta["arch"] == "mobilenet_v2" and run.meta["num_train"] == 80
    assert len(run.steps) == EPOCHS * 80 // BATCH
    assert [e.epoch for e in run.evaluations] == list(range(1, EPOCHS + 1))
    assert all(set(s.grad_norm) == {"head"} and s.grad_norm["head"] > 0 for s in run.steps)
    assert all(s.data_time is not None and s.compute_time is not None for s in run.steps)
    assert run.samples and all(s.gpu_util is None for s in run.samples)  # this machine has no GPU
    assert run.final is not None and run.final["best_epoch"] >= 1


def test_a_healthy_run_passes_the_training_rules_and_overfit_matches_its_numbers(trained):
    verdicts = _verdicts(trained.records(trained.healthy))
    assert verdicts["loss_not_decreasing"].status == OK
    assert verdicts["vanishing_gradient"].status == OK
    assert verdicts["exploding_gradient"].status == OK
    # Step timings are wall-clock and this machine is shared: the verdict is the unit tests'
    # business; here it must have the timings it needs.
    assert (
        verdicts["dataloader_bottleneck"].status in (OK, ISSUE) and "% of step time" in verdicts["dataloader_bottleneck"].detail
    )
    assert verdicts["low_gpu_utilization"].status == NOT_APPLICABLE
    assert verdicts["cpu_bottleneck"].status == NOT_APPLICABLE
    assert verdicts["overtraining"].status == NOT_APPLICABLE  # 4 epochs: below Debugger's patience
    # 80 photos fit perfectly within a few epochs, so valid loss may well exceed train loss by
    # 10 %: whichever way it goes, the verdict must match the recorded numbers.
    run = read_records(trained.records(trained.healthy))
    gaps = [(e.valid_loss - e.train_loss) / e.train_loss for e in run.evaluations]
    assert verdicts["overfit"].status == (ISSUE if max(gaps) > rules.OVERFIT_RATIO else OK)


def test_a_run_with_lr_50_is_flagged_as_diverging(trained):
    run = read_records(trained.records(trained.diverged))
    losses = [s.loss for s in run.steps]
    # What the recorder saw: an untrained loss near ln(10), then far above it (or nan/inf).
    assert losses[0] < 5
    assert max((x for x in losses if math.isfinite(x)), default=math.inf) > 100 or any(not math.isfinite(x) for x in losses)
    verdicts = _verdicts(trained.records(trained.diverged))
    flagged = {name for name, result in verdicts.items() if result.status == ISSUE}
    assert "loss_not_decreasing" in flagged, verdicts["loss_not_decreasing"]
    assert "train.lr" in verdicts["loss_not_decreasing"].advice
