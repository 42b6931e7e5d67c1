"""The overall verdict on synthetic histories: each shape of a run gets its own advice."""

from __future__ import annotations

import math

from dogbreed.report import verdict as v
from dogbreed.report.records import Evaluation


def history(valid_acc, valid_loss, train_loss=None, train_acc=None) -> list[Evaluation]:
    n = len(valid_acc)
    train_loss = train_loss or [1.0 - 0.1 * i for i in range(n)]
    train_acc = train_acc or [min(1.0, a + 0.1) if a is not None else None for a in valid_acc]
    return [
        Evaluation(
            epoch=i + 1,
            train_loss=train_loss[i],
            train_acc=train_acc[i],
            valid_loss=valid_loss[i],
            valid_acc=valid_acc[i],
            time=None,
        )  # fmt: skip
        for i in range(n)
    ]


def test_valid_accuracy_still_rising_at_the_last_epoch_says_train_more_epochs():
    judged = v.verdict(history([0.5, 0.6, 0.72], [1.2, 1.0, 0.9]))
    assert judged.kind == v.RISING and judged.epoch == 3
    assert judged.text.startswith("valid accuracy still rising at the last epoch (60.0% -> 72.0%)")
    assert "train more epochs" in judged.text and "train.epochs above 3" in judged.text


def test_valid_loss_turning_while_train_loss_falls_is_overfitting_from_the_epoch_after_its_minimum():
    judged = v.verdict(history([0.5, 0.7, 0.7, 0.68], [1.0, 0.8, 0.9, 1.1], train_loss=[1.0, 0.6, 0.4, 0.2]))
    assert judged.kind == v.OVERFITTING and judged.epoch == 3
    assert judged.text.startswith("overfitting from epoch 3:")
    assert "valid loss rose from 0.800 at epoch 2 to 1.100 at epoch 4" in judged.text
    assert "train 2 epochs" in judged.text and "train.weight_decay" in judged.text


def test_a_valid_loss_wobble_within_the_tolerance_is_not_overfitting():
    # 0.8 -> 0.83 is below LOSS_RISE (5 %): accuracy flat since epoch 2, so the run converged.
    judged = v.verdict(history([0.5, 0.7, 0.7, 0.7], [1.0, 0.8, 0.82, 0.83], train_loss=[1.0, 0.6, 0.4, 0.2]))
    assert judged.kind == v.CONVERGED and judged.epoch == 2
    assert "peaked at epoch 2" in judged.text and "train.epochs=2" in judged.text and "in the 2 epochs after" in judged.text


def test_rising_accuracy_with_a_rising_loss_says_overconfident_not_stop():
    judged = v.verdict(history([0.5, 0.6, 0.7, 0.8], [1.0, 0.7, 0.9, 1.2], train_loss=[1.0, 0.5, 0.3, 0.1]))
    assert judged.kind == v.RISING_OVERCONFIDENT and judged.epoch == 4
    assert "still rising" in judged.text and "overconfident" in judged.text and "label_smoothing" in judged.text


def test_a_gain_below_the_noise_threshold_is_levelled_off_not_rising():
    judged = v.verdict(history([0.5, 0.8, 0.803], [1.0, 0.6, 0.6]))
    assert judged.kind == v.CONVERGED and judged.epoch == 3 and "levelled off" in judged.text


def test_a_model_that_cannot_fit_its_training_photos_is_underfitting():
    judged = v.verdict(history([0.2, 0.3, 0.3], [2.0, 1.9, 1.9], train_acc=[0.22, 0.31, 0.32]))
    assert judged.kind == v.UNDERFITTING and judged.epoch == 2
    assert "train accuracy only 31.0%" in judged.text and "model.freeze" in judged.text


def test_a_nan_loss_is_a_divergence_whatever_the_accuracy():
    judged = v.verdict(history([0.5, 0.6, 0.1], [1.0, math.nan, math.nan]))
    assert judged.kind == v.DIVERGED and judged.epoch == 2 and "lower train.lr" in judged.text


def test_without_valid_accuracy_the_valid_loss_decides():
    judged = v.verdict(history([None, None, None], [1.0, 0.8, 0.6], train_acc=[None, None, None]))
    assert judged.kind == v.RISING and judged.text.startswith("valid loss still falling at the last epoch (0.800 -> 0.600)")


def test_one_epoch_or_none_is_too_little_to_judge():
    assert v.verdict(history([0.5], [1.0])).kind == v.TOO_SHORT
    assert v.verdict([]).kind == v.NO_DATA
    assert v.verdict([]).to_json() == {"kind": "no-data", "text": v.verdict([]).text, "epoch": None}


def test_equal_valid_accuracy_goes_to_the_lower_valid_loss_as_the_job_keeps_it():
    # Valid accuracy is 100 % from epoch 2; the job keeps epoch 4 for its lower valid loss.
    judged = v.verdict(history([0.9, 1.0, 1.0, 1.0], [0.5, 0.3, 0.2, 0.1]))
    assert judged.kind == v.CONVERGED and judged.epoch == 4
    assert judged.text.startswith("valid accuracy levelled off at 100.0% (since epoch 2;")


def test_a_train_loss_above_a_uniform_guess_is_a_divergence_even_when_finite():
    # What lr 50 did in the real test run: losses in the thousands, valid accuracy climbing.
    diverging = history([0.2, 0.6, 0.7, 0.8], [13592.0, 631.3, 235.3, 107.1], train_loss=[8913.4, 4680.7, 772.6, 377.0])
    judged = v.verdict(diverging, num_classes=10)
    assert judged.kind == v.DIVERGED and judged.epoch == 4
    assert "ends at 377" in judged.text and "2.30 of a uniform guess over 10 breeds" in judged.text
    assert v.verdict(diverging).kind == v.RISING  # without the class count it cannot tell
    healthy = history([0.9, 1.0], [0.05, 0.04], train_loss=[1.07, 1.02])  # label smoothing keeps it above 1
    assert v.verdict(healthy, num_classes=10).kind != v.DIVERGED


def test_an_overconfident_perfect_run_above_a_uniform_guess_is_not_a_divergence():
    # What a probe saw on 4 breeds: train accuracy 100% at every epoch, test 100%, and a train
    # loss of 1.685 against ln 4 = 1.386, from label smoothing charging a head that puts ~0 on
    # the other breeds. It was called "diverged: lower train.lr by 10x".
    perfect = history([1.0, 1.0], [0.001, 0.0002], train_loss=[1.70, 1.685], train_acc=[1.0, 1.0])
    assert v.verdict(perfect, num_classes=4).kind != v.DIVERGED
    # The same loss with the training photos mostly named wrong is one.
    lost = history([0.3, 0.3], [1.5, 1.6], train_loss=[1.70, 1.685], train_acc=[0.3, 0.3])
    assert v.verdict(lost, num_classes=4).kind == v.DIVERGED


def test_with_no_epoch_the_jobs_state_says_why():
    failed = v.verdict([], 10, "Failed", "train.py: error: data: the valid split is empty")
    assert failed.kind == v.NO_DATA
    assert failed.text == (
        "the job failed before its first epoch ended (train.py: error: data: the valid split is empty): fix that and train again"
    )
    assert "train it again with the same --name to resume it" in v.verdict([], 10, "Stopped").text
    assert "still in its first epoch" in v.verdict([], 10, "InProgress").text
    assert v.verdict([], 10, "Completed").text == "no epoch was evaluated: nothing to judge"


def test_a_job_that_failed_after_some_epochs_says_so_before_the_verdict_on_them():
    judged = v.verdict(history([0.5, 0.6, 0.72], [1.2, 1.0, 0.9]), 10, "Failed", "out of memory")
    assert judged.kind == v.RISING
    assert judged.text.startswith("the job failed after epoch 3 (out of memory); up to there: valid accuracy still rising")


def test_a_job_stopped_or_still_running_after_some_epochs_says_so_before_the_verdict_on_them():
    """A stopped job's verdict read as a finished run's ("65 epochs are enough") with no word
    that it was stopped, and a running job's likewise."""
    runs = history([0.5, 0.6, 0.72], [1.2, 1.0, 0.9])
    stopped = v.verdict(runs, 10, "Stopped", "stopped by request")
    assert stopped.text.startswith("the job was stopped after epoch 3 (train it again with the same --name to resume it); up to")
    running = v.verdict(runs, 10, "InProgress")
    assert running.text.startswith("the job is still running (epoch 3 so far; report again when it ends); up to there: ")
    assert stopped.kind == running.kind == v.verdict(runs, 10, "Completed").kind == v.RISING
