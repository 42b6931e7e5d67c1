"""A corrupt checkpoint never traps a job (#15 item 6): the previous one is kept and used,
and when none is readable the run fails with one line naming the files and the way out."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import pytest
import torch

from tests.source_dir.conftest import SOURCE_DIR, run_train

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")


@pytest.fixture
def checkpoints():
    import sys

    sys.path.insert(0, str(SOURCE_DIR))
    try:
        from breedkit import checkpoints as module

        yield module
    finally:
        sys.path.remove(str(SOURCE_DIR))


class _Payload:
    """A pickle that would run code (touch a marker file) if loaded without weights_only."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _corrupt(path: Path, how: str) -> None:
    if how == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif how == "garbage":
        path.write_bytes(b"\x00not a checkpoint" * 100)
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "pickle":
        path.write_bytes(pickle.dumps({"model": _Payload(path.with_name("pwned"))}))
    elif how == "torch-pickle":
        torch.save({"args": _Payload(path.with_name("pwned"))}, path)
    elif how == "not-a-dict":
        torch.save([1, 2, 3], path)


def _state(checkpoints, epoch: int):
    model = torch.nn.Linear(3, 2)
    return checkpoints.TrainingState(
        epoch=epoch,
        model=checkpoints.trainable_state(model),
        optimizer={"state": {}, "param_groups": []},
        scaler={},
        best=checkpoints.Best(epoch, 0.5, 1.0, None),
        history=[{"epoch": float(e)} for e in range(1, epoch + 1)],
    )


HOWS = ["truncated", "garbage", "empty", "pickle", "torch-pickle", "not-a-dict"]


@pytest.mark.parametrize("how", HOWS)
def test_a_corrupt_latest_checkpoint_falls_back_to_the_previous(tmp_path, checkpoints, capsys, how):
    args = {"lr": 0.1}
    checkpoints.save(tmp_path, _state(checkpoints, 1), args)
    checkpoints.save(tmp_path, _state(checkpoints, 2), args)
    assert checkpoints.load(tmp_path, args).epoch == 2
    _corrupt(tmp_path / checkpoints.CHECKPOINT_FILE, how)
    state = checkpoints.load(tmp_path, args)
    assert state.epoch == 1
    note = capsys.readouterr().err
    assert str(tmp_path / checkpoints.CHECKPOINT_FILE) in note and "resuming from" in note
    # Set aside, so the next save keeps the good previous one as the previous one.
    assert (tmp_path / checkpoints.CORRUPT_FILE).exists() and not (tmp_path / checkpoints.CHECKPOINT_FILE).exists()
    checkpoints.save(tmp_path, _state(checkpoints, 2), args)
    assert checkpoints.load(tmp_path, args).epoch == 2
    assert not (tmp_path / "pwned").exists()  # the payload never ran


@pytest.mark.parametrize("how", HOWS)
def test_no_readable_checkpoint_is_one_line_naming_the_files(tmp_path, checkpoints, how):
    args = {"lr": 0.1}
    checkpoints.save(tmp_path, _state(checkpoints, 1), args)
    checkpoints.save(tmp_path, _state(checkpoints, 2), args)
    for name in (checkpoints.CHECKPOINT_FILE, checkpoints.PREVIOUS_FILE):
        _corrupt(tmp_path / name, how)
    with pytest.raises(checkpoints.CorruptCheckpoint) as raised:
        checkpoints.load(tmp_path, args)
    message = str(raised.value)
    assert len(message.splitlines()) == 1
    assert f"delete {tmp_path / checkpoints.CHECKPOINT_FILE} and {tmp_path / checkpoints.PREVIOUS_FILE}" in message
    assert "--name" in message


def test_killed_between_the_two_renames_resumes_from_the_previous(tmp_path, checkpoints):
    args = {"lr": 0.1}
    checkpoints.save(tmp_path, _state(checkpoints, 1), args)
    checkpoints.save(tmp_path, _state(checkpoints, 2), args)
    (tmp_path / checkpoints.CHECKPOINT_FILE).unlink()  # what a kill right after the first rename leaves
    assert checkpoints.load(tmp_path, args).epoch == 1


@pytest.mark.slow
def test_train_py_resumes_past_a_corrupt_checkpoint_or_says_what_to_delete(tmp_path, channel, common_flags):
    flags = [*common_flags, "--epochs", "2"]
    job = tmp_path / "job"
    run_train(job, channel, *flags)
    saved = job / "checkpoints"
    assert (saved / "checkpoint.pth").is_file() and (saved / "checkpoint.prev.pth").is_file()
    shutil.copytree(saved, tmp_path / "saved")

    _corrupt(saved / "checkpoint.pth", "truncated")
    resumed = run_train(job, channel, *flags)
    assert "resuming after epoch 1" in resumed.proc.stderr
    assert [line.split()[0] for line in resumed.metric_lines() if line.startswith("epoch=")] == ["epoch=2"]

    for name in ("checkpoint.pth", "checkpoint.prev.pth"):
        _corrupt(saved / name, "garbage")
    failed = run_train(job, channel, *flags, check=False)
    assert failed.proc.returncode == 2
    errors = [line for line in failed.proc.stderr.splitlines() if line.startswith("train.py: error:")]
    assert len(errors) == 1 and f"delete {saved / 'checkpoint.pth'}" in errors[0], failed.proc.stderr
    assert "Traceback" not in failed.proc.stderr
