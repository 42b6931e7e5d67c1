"""Checkpoints: a killed run resumes from its last epoch and ends exactly where an
uninterrupted run ends; a checkpoint from other hyperparameters is refused."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
import torch

from tests.source_dir.conftest import SOURCE_DIR, JobRun, job_env, run_train, train_argv

# The seed's way (backbone every step) at a small crop: slow enough to be killed mid-epoch.
SLOW_FLAGS = ["--feature-cache", "false", "--epochs", "3", "--crop", "112", "--resize", "128"]


def _checkpoint_epoch(path) -> int:
    return torch.load(path, map_location="cpu", weights_only=True)["epoch"]


@pytest.mark.slow
def test_sigkill_after_first_checkpoint_then_restart_matches_uninterrupted(tmp_path, channel, common_flags):
    flags = [*common_flags, *SLOW_FLAGS]
    uninterrupted = run_train(tmp_path / "straight", channel, *flags)

    job = tmp_path / "killed"
    checkpoint = job / "checkpoints" / "checkpoint.pth"
    proc = subprocess.Popen(
        train_argv(*flags), cwd=SOURCE_DIR, env=job_env(job, channel),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while not checkpoint.exists():
            assert proc.poll() is None, f"train.py ended before its first checkpoint: {proc.communicate()}"
            assert time.monotonic() < deadline, "no checkpoint after 300 s"
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        first_out, _ = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    killed_at = _checkpoint_epoch(checkpoint)
    assert 1 <= killed_at < 3, "the kill must land before the last epoch"
    assert "test_acc" not in first_out and not (job / "model" / "model.pth").exists()

    resumed = run_train(job, channel, *flags)
    assert f"resuming after epoch {killed_at}" in resumed.proc.stderr
    # The restart prints only the epochs it ran, and the same numbers the straight run printed.
    straight_lines = uninterrupted.metric_lines()
    assert resumed.metric_lines() == straight_lines[killed_at:]
    assert resumed.metrics()["history"] == uninterrupted.metrics()["history"]
    final = {k: v for k, v in resumed.metrics()["final"].items() if k != "train_seconds"}
    assert final == {k: v for k, v in uninterrupted.metrics()["final"].items() if k != "train_seconds"}
    metas = [r for r in resumed.records() if r["type"] == "meta"]
    assert [m["resumed_from_epoch"] for m in metas] == [None, killed_at]
    assert torch.equal(
        torch.load(job / "model" / "model.pth", weights_only=True)["classifier.1.weight"],
        torch.load(uninterrupted.model_dir / "model.pth", weights_only=True)["classifier.1.weight"],
    )


@pytest.fixture
def job_module(train_module, monkeypatch, tmp_path, channel):
    """train.py in this process, with SageMaker's variables pointing at tmp_path."""
    env = job_env(tmp_path, channel)
    for key, value in env.items():
        if key.startswith("SM_"):
            monkeypatch.setenv(key, value)
    return train_module


class SimulatedCrash(Exception):
    pass


def crash_after_epoch_2(train_module, monkeypatch, args) -> None:
    """Run train.py's main until the checkpoint of epoch 2 is on disk, then crash."""
    real_save = train_module.checkpoints.save

    def save_then_crash(directory, state, run_args):
        path = real_save(directory, state, run_args)
        if state.epoch == 2:
            raise SimulatedCrash
        return path

    monkeypatch.setattr(train_module.checkpoints, "save", save_then_crash)
    with pytest.raises(SimulatedCrash):
        train_module.main(args)
    monkeypatch.setattr(train_module.checkpoints, "save", real_save)


@pytest.mark.slow
def test_cached_run_crashing_after_epoch_2_resumes_to_the_same_metrics(
    job_module, monkeypatch, tmp_path, common_flags, reference_run
):
    train_module = job_module
    """The feature-cache path is too fast to kill from outside, so the crash comes from
    inside: right after the checkpoint of epoch 2 is on disk."""
    args = train_module.get_args_parser().parse_args(common_flags)
    crash_after_epoch_2(train_module, monkeypatch, args)
    final = train_module.main(args)
    job = JobRun(tmp_path, None)
    assert job.metrics()["history"] == reference_run.metrics()["history"]
    assert final["test_acc"] == reference_run.metrics()["final"]["test_acc"]
    assert [r["resumed_from_epoch"] for r in job.records() if r["type"] == "meta"] == [None, 2]
    steps = [(r["epoch"], r["step"]) for r in job.records() if r["type"] == "step"]
    assert steps.count((3, 1)) == 1 and steps.count((2, 1)) == 1  # epochs 1-2 were not rerun


@pytest.mark.slow
def test_resuming_with_other_hyperparameters_is_refused(job_module, tmp_path, common_flags):
    train_module = job_module
    parser = train_module.get_args_parser()
    train_module.main(parser.parse_args([*common_flags, "--epochs", "1"]))
    with pytest.raises(train_module.checkpoints.ResumeMismatch, match=r"lr: 0\.001 -> 0\.002"):
        train_module.main(parser.parse_args([*common_flags, "--epochs", "1", "--lr", "0.002"]))
    # Settings that do not change the numbers may differ.
    train_module.main(parser.parse_args([*common_flags, "--epochs", "1", "--num-workers", "1"]))
    assert os.path.exists(tmp_path / "model" / "model.pth")


@pytest.mark.slow
def test_the_seed_decides_the_run(job_module, tmp_path, common_flags, reference_run):
    """Same seed, same numbers (the runs above); another seed, another head and shuffle."""
    job_module.main(job_module.get_args_parser().parse_args([*common_flags, "--seed", "1"]))
    other = JobRun(tmp_path, None).metrics()["history"]
    assert other != reference_run.metrics()["history"]
    assert len(other) == len(reference_run.metrics()["history"])


@pytest.mark.slow
def test_a_frozen_backbone_checkpoint_holds_what_training_changes_and_old_ones_still_resume(
    job_module, monkeypatch, tmp_path, common_flags, reference_run
):
    train_module = job_module
    args = train_module.get_args_parser().parse_args(common_flags)
    crash_after_epoch_2(train_module, monkeypatch, args)

    path = tmp_path / "checkpoints" / "checkpoint.pth"
    blob = torch.load(path, map_location="cpu", weights_only=True)
    full = torch.load(reference_run.model_dir / "model.pth", map_location="cpu", weights_only=True)
    saved = set(blob["model"])
    # The head's parameters and every buffer; none of the frozen backbone's parameters.
    assert {"classifier.1.weight", "classifier.1.bias"} <= saved
    assert "features.1.conv.0.1.running_mean" in saved
    assert not any(key.startswith("features.") and key.endswith((".weight", ".bias")) for key in saved)
    assert saved < set(full)
    assert path.stat().st_size < 1_000_000  # the whole network would be 14 MB, twice when best != last

    # A checkpoint of the earlier format (the whole state dict) still resumes, to the same numbers.
    blob["format"] = 1
    blob["model"] = {**{k: v for k, v in full.items() if k not in saved}, **blob["model"]}
    torch.save(blob, path)
    final = train_module.main(args)
    assert JobRun(tmp_path, None).metrics()["history"] == reference_run.metrics()["history"]
    assert final["test_acc"] == reference_run.metrics()["final"]["test_acc"]
