"""Each rule on records built with chosen numbers, on both sides of its threshold."""

from __future__ import annotations

import pytest

from dogbreed.report import rules
from dogbreed.report.rules import ISSUE, NO_DATA, NOT_APPLICABLE, OK, RuleResult
from tests.report.builders import T0, evals, meta, run, steps, system

FALLING = [2.5 - 0.04 * i for i in range(50)]  # 2.5 -> 0.54


def verdict(rule, *groups):
    return rule(run(*groups))


def test_every_rule_answers_no_data_or_not_applicable_on_empty_records():
    results = rules.evaluate(run([meta()]))
    assert [r.name for r in results] == [rule.__name__ for rule in rules.RULES]
    assert all(r.status in (NO_DATA, NOT_APPLICABLE) for r in results), results
    assert all(r.source == "dogbreed" for r in results)


def test_issues_carry_advice_and_every_other_verdict_says_why_there_is_nothing_to_do():
    results = rules.evaluate(run([meta()], steps([2.0] + [500.0] * 19), evals([900.0, 400.0], [2000.0, 3000.0])))
    flagged = {r.name: r for r in results if r.status == ISSUE}
    assert {"loss_not_decreasing", "overfit"} <= set(flagged)
    assert all(r.advice.endswith(".") and "train." in r.advice for r in flagged.values())
    assert all(r.advice.startswith("Nothing to do") for r in results if r.status != ISSUE)


# --- gradients ---------------------------------------------------------------------------


def test_vanishing_gradient_threshold_is_debuggers_1e_minus_7():
    assert rules.VANISHING_THRESHOLD == 1e-7
    assert verdict(rules.vanishing_gradient, steps(FALLING, grad=[1.0] * 40 + [0.5e-7] * 10)).status == ISSUE
    assert verdict(rules.vanishing_gradient, steps(FALLING, grad=[1.0] * 40 + [2e-7] * 10)).status == OK
    # One tiny step among normal ones is noise, not a vanished gradient (median of the window).
    assert verdict(rules.vanishing_gradient, steps(FALLING, grad=[1.0] * 49 + [0.0])).status == OK
    assert verdict(rules.vanishing_gradient, [meta()]).status == NO_DATA


def test_exploding_gradient_flags_nan_and_inf_as_debuggers_exploding_tensor():
    result = verdict(rules.exploding_gradient, steps(FALLING, grad=[1.0] * 30 + [None] + [1.0] * 19))
    assert result.status == ISSUE and "epoch 4 step 1" in result.detail and "head" in result.detail


def test_exploding_gradient_flags_a_thousandfold_growth_only():
    grown = [1.0] * 10 + [10.0 ** (i / 4) for i in range(30)] + [2000.0] * 10
    assert verdict(rules.exploding_gradient, steps(FALLING, grad=grown)).status == ISSUE
    assert verdict(rules.exploding_gradient, steps(FALLING, grad=[1.0] * 40 + [900.0] * 10)).status == OK


# --- loss ----------------------------------------------------------------------------------


def test_loss_that_falls_is_ok():
    result = verdict(rules.loss_not_decreasing, steps(FALLING))
    assert result.status == OK and "fell by" in result.detail


def test_loss_that_becomes_nan_is_flagged_where_it_happened():
    result = verdict(rules.loss_not_decreasing, steps(FALLING[:22] + [None] + FALLING[23:]))
    assert result.status == ISSUE and "epoch 3 step 3" in result.detail


def test_loss_that_jumps_after_the_first_step_is_flagged_even_if_it_then_drifts_down():
    # lr far too high: the untrained loss is 2.3, then thousands, slowly "improving".
    diverged = [2.3] + [20000.0 - 300 * i for i in range(49)]
    result = verdict(rules.loss_not_decreasing, steps(diverged))
    assert result.status == ISSUE and "rose from 2.3" in result.detail and "train.lr" in result.advice


@pytest.mark.parametrize(
    ("end", "status"),
    [(1.0 * 1.06, ISSUE), (1.0 * 1.04, ISSUE), (1.0 * 0.9995, ISSUE), (1.0 * 0.998, OK)],
    ids=["rose-6%", "flat-up-4%", "fell-0.05%", "fell-0.2%"],
)
def test_loss_thresholds_are_debuggers_5_percent_up_and_0_1_percent_down(end, status):
    assert (rules.LOSS_MAX_INCREASE_PERCENT, rules.LOSS_MIN_DECREASE_PERCENT) == (5.0, 0.1)
    assert verdict(rules.loss_not_decreasing, steps([1.0] * 10 + [end] * 10)).status == status


def test_loss_falls_back_to_epoch_losses_without_step_records():
    assert verdict(rules.loss_not_decreasing, evals([2.0, 1.0, 0.5], [2.1, 1.1, 0.6])).status == OK
    assert verdict(rules.loss_not_decreasing, evals([2.0], [2.1])).status == NO_DATA


# --- generalisation ----------------------------------------------------------------------------


def test_overfit_uses_debuggers_10_percent_ratio_and_names_the_epoch():
    assert rules.OVERFIT_RATIO == 0.1
    ok = verdict(rules.overfit, evals([1.0, 0.8, 0.6], [1.05, 0.85, 0.65]))
    assert ok.status == OK
    result = verdict(rules.overfit, evals([1.0, 0.8, 0.6], [1.05, 0.85, 0.7]))
    assert result.status == ISSUE and "epoch 3" in result.detail and "17%" in result.detail


def test_overtraining_needs_debuggers_patience_of_evaluations():
    four = verdict(rules.overtraining, evals([1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0]))
    assert four.status == NOT_APPLICABLE and "6" in four.detail
    stalled_train = [1.0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]  # 5 evaluations without a 0.01 gain
    result = verdict(rules.overtraining, evals(stalled_train, [1.0 - 0.05 * i for i in range(7)]))
    assert result.status == ISSUE and "train loss" in result.detail and "5 epochs" in result.detail
    improving = [1.0 - 0.05 * i for i in range(7)]
    assert verdict(rules.overtraining, evals(improving, improving)).status == OK
    # Gains that add up to less than delta (0.01) since the best do not count as improvements.
    creeping = [1.0, 0.5] + [0.5 - 0.001 * i for i in range(1, 6)]
    assert verdict(rules.overtraining, evals(creeping, improving)).status == ISSUE


def test_overtraining_on_the_valid_loss_after_ten_stalled_epochs():
    train = [1.0 - 0.05 * i for i in range(12)]
    valid = [1.0, 0.7] + [0.7] * 10
    result = verdict(rules.overtraining, evals(train, valid))
    assert result.status == ISSUE and "valid loss" in result.detail and "10 epochs" in result.detail


# --- input pipeline and hardware -------------------------------------------------------------


def test_dataloader_bottleneck_over_half_the_step_time_waiting():
    starved = verdict(rules.dataloader_bottleneck, steps(FALLING, data_time=0.06, compute_time=0.04))
    assert starved.status == ISSUE and "60 %" in starved.detail and "num_workers" in starved.advice
    fed = verdict(rules.dataloader_bottleneck, steps(FALLING, data_time=0.04, compute_time=0.06))
    assert fed.status == OK and "40 %" in fed.detail


def test_dataloader_ignores_the_first_step_of_each_epoch_where_workers_start():
    records = steps(FALLING, data_time=0.01, compute_time=0.04)
    for record in records:
        if record["step"] == 1:
            record["data_time"] = 5.0  # worker start-up
    assert verdict(rules.dataloader_bottleneck, records).status == OK


def test_gpu_rules_do_not_apply_without_a_gpu():
    cpu_job = [meta(device="cpu")], steps(FALLING), system([None] * 5)
    assert verdict(rules.low_gpu_utilization, *cpu_job).status == NOT_APPLICABLE
    assert verdict(rules.cpu_bottleneck, *cpu_job).status == NOT_APPLICABLE


@pytest.mark.parametrize(
    ("gpu", "status", "word"),
    [
        ([95, 96, 97, 98, 99, 97], OK, ""),
        ([40, 50, 60, 65, 60, 55], ISSUE, "underused"),
        ([95, 5, 96, 97, 3, 98], ISSUE, "fluctuating"),
        ([95, 96], NO_DATA, ""),
    ],
)
def test_low_gpu_utilization_uses_debuggers_p95_70_and_p5_10(gpu, status, word):
    result = verdict(rules.low_gpu_utilization, [meta(device="cuda:0")], steps(FALLING), system(gpu))
    assert result.status == status and word in result.detail


def test_gpu_samples_from_before_the_first_step_are_start_up_and_ignored():
    startup = system([0.0] * 10, start=T0 - 200)  # loading, extracting features: GPU idle
    steady = system([95.0] * 5)
    assert verdict(rules.low_gpu_utilization, [meta(device="cuda:0")], steps(FALLING), startup, steady).status == OK


def test_cpu_bottleneck_when_the_gpu_idles_while_the_cpu_is_saturated():
    job = [meta(device="cuda:0", cpu_count=4)], steps(FALLING)
    starved = verdict(rules.cpu_bottleneck, *job, system([2, 3, 95, 1, 2], cpu=[390, 380, 100, 395, 370]))
    assert starved.status == ISSUE and "80 %" in starved.detail
    # 390 % of one process on 4 cores is 97 % of the machine; on 8 cores it is under 50 %.
    roomy = verdict(
        rules.cpu_bottleneck,
        [meta(device="cuda:0", cpu_count=8)],
        steps(FALLING),
        system([2, 3, 95, 1, 2], cpu=[390, 380, 100, 395, 370]),
    )
    assert roomy.status == OK


def test_debuggers_verdicts_get_what_to_do_too():
    theirs = [
        RuleResult("LossNotDecreasing", ISSUE, "Debugger rule: IssuesFound", source="sagemaker-debugger"),
        RuleResult("Overfit", OK, "Debugger rule: NoIssuesFound", source="sagemaker-debugger"),
        RuleResult("ProfilerReport/CPUBottleneck", NO_DATA, "Debugger rule: InProgress", source="sagemaker-debugger"),
    ]
    advised = [rules.with_advice(r) for r in theirs]
    assert "ProfilerReport" in advised[0].advice and advised[1].advice.startswith("Nothing to do")
    assert "no verdict" in advised[2].advice
    own = RuleResult("overfit", ISSUE, "x", "Do this.")
    assert rules.with_advice(own) is own  # a rule's own advice is kept
