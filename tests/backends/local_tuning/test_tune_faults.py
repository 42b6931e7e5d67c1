"""Faults around a local tuning job, through the real CLI: a SIGTERM (not a Ctrl-C), a damaged
study journal, trial job folders an earlier search of the same name left, every trial failing,
a trial that diverges to nan."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
import torch

from dogbreed.processes import is_alive
from tests.backends.local_tuning.test_tune_local import UNCACHED, _start_cli, answer_of, job_dir
from tests.conftest import error_line, wait_for

pytestmark = pytest.mark.slow


def _journal(env, name: str) -> Path:
    return env.workspace / "tuning" / name / "journal.log"


def _live_pids(env) -> list[int]:
    """Workers, supervisors and train.py processes of env's workspace still running."""
    pids = []
    for pid_file in env.workspace.glob("tuning/*/workers/*.pid"):
        pids.append(int(pid_file.read_text()))
    for status in env.workspace.glob("jobs/*/status.json"):
        blob = json.loads(status.read_text())
        pids += [blob[key] for key in ("supervisor_pid", "pid") if blob.get(key)]
    return [pid for pid in pids if is_alive(pid) and str(env.workspace).encode() in Path(f"/proc/{pid}/cmdline").read_bytes()]


def test_sigterm_stops_tune_like_ctrl_c_and_leaves_nothing_running(tune_env):
    """SIGTERM (a CI timeout, `kill`) to the tune process alone used to end it on the spot:
    its workers and their train.py jobs searched on with nobody following."""
    tune_env.write_config(train=UNCACHED, tune={"max_jobs": 2, "max_parallel_jobs": 2})
    proc = _start_cli(tune_env, "tune", "--name", "tune-term", "--json")
    try:

        def running_jobs():
            records = tune_env.ledger.list("trial", parent="tune-term")
            return len(records) == 2 and all(r.state == "InProgress" for r in records)

        wait_for(running_jobs, what="two running trials")
        proc.send_signal(signal.SIGTERM)  # the CLI only, not its group
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130 and out == "", err
    assert "run the same command again to resume" in error_line(err)
    assert _live_pids(tune_env) == []
    assert tune_env.ledger.get("tuning-job", "tune-term", "local").state == "Stopped"
    for status in (tune_env.workspace / "jobs").glob("*/status.json"):
        assert json.loads(status.read_text())["state"] in ("Stopped", "Completed")


def test_a_journal_damaged_inside_is_one_line_and_the_row_is_not_left_in_progress(tune_env):
    tune_env.write_config(tune={"max_jobs": 1})
    answer_of(tune_env.cli("tune", "--name", "tune-garbled", "--json"))
    journal = _journal(tune_env, "tune-garbled")
    lines = journal.read_bytes().split(b"\n")
    lines[1] = b"\xd0\x9f garbage {" + os.urandom(20)
    journal.write_bytes(b"\n".join(lines))

    result = tune_env.cli("tune", "--name", "tune-garbled", "--set", "tune.max_jobs=2", "--json")

    assert result.returncode == 1 and result.stdout == ""
    line = error_line(result.stderr)
    assert "Traceback" not in result.stderr and "unexpected" not in line
    assert f"study journal {journal.resolve()} is damaged at line 2" in line and "another --name" in line
    assert tune_env.ledger.get("tuning-job", "tune-garbled", "local").state == "Completed"  # as it was


def test_a_journal_record_cut_short_at_its_end_is_dropped_and_the_search_resumes(tune_env):
    """A write a kill or a full disk cut short: Optuna itself skips such a last record, but
    its next append glued onto it, and the study could never be read again."""
    tune_env.write_config(tune={"max_jobs": 1})
    answer_of(tune_env.cli("tune", "--name", "tune-torn", "--json"))
    journal = _journal(tune_env, "tune-torn")
    journal.write_bytes(journal.read_bytes() + b'{"op_code": 5, "worker_id": "x", "trial_id": 0, "va')

    result = tune_env.cli("tune", "--name", "tune-torn", "--set", "tune.max_jobs=2", "--json")

    answer = answer_of(result)
    assert "dropped a journal record cut short" in result.stderr
    assert answer["state"] == "Completed" and [t["status"] for t in answer["trials"]] == ["Completed"] * 2
    assert answer_of(tune_env.cli("tune", "--name", "tune-torn", "--set", "tune.max_jobs=2", "--json"))["state"] == "Completed"


def test_a_trial_job_left_by_an_earlier_search_of_the_name_is_not_taken_for_this_trial(tune_env):
    """With the study gone (journal moved aside), trial numbers start again at 0, and
    `<name>-t000` may be the earlier search's job: it was started again with new flags, and its
    old log's `exited with code 0` and metrics were read as the new trial's result, silently."""
    tune_env.write_config(tune={"max_jobs": 2, "max_parallel_jobs": 2})
    answer_of(tune_env.cli("tune", "--name", "tune-again", "--json"))
    journal = _journal(tune_env, "tune-again")
    journal.rename(journal.with_suffix(".aside"))
    # The two jobs swap names, so at least one number is asked for a point its folder did not run,
    # whichever worker took which trial. (Left as they were, the test hung on a race: when the
    # earlier search's first worker took both trials, the new one asked for the very same points,
    # and their jobs rightly answered as Completed.)
    first, second = job_dir(tune_env, "tune-again-t000"), job_dir(tune_env, "tune-again-t001")
    first.rename(first.with_name("swap"))
    second.rename(first)
    first.with_name("swap").rename(second)
    tune_env.write_config(tune={"max_jobs": 2, "max_parallel_jobs": 1})

    result = tune_env.cli("tune", "--name", "tune-again", "--json")

    assert result.returncode in (0, 1) and "Traceback" not in result.stderr
    refused = 0
    for trial in tune_env.ledger.list("trial", parent="tune-again"):
        argv = json.loads((job_dir(tune_env, trial.name) / "request.json").read_text())["argv"]
        ran_with = float(argv[argv.index("--lr") + 1])
        if trial.state == "Completed":
            assert ran_with == trial.meta["params"]["lr"], "a trial took another search's job as its own"
        else:
            assert trial.state == "Failed" and "already exists with other settings" in trial.meta["failure"]
            assert (job_dir(tune_env, trial.name) / "train.log").read_text().count("starting:") == 1
            refused += 1
    assert refused >= 1


def test_every_trial_failing_names_the_first_trials_log(tune_env, tmp_path):
    broken = tmp_path / "broken.pth"
    broken.write_bytes(b"not a state_dict")
    tune_env.write_config(model={"weights": str(broken)}, tune={"max_jobs": 1})
    result = tune_env.cli("tune", "--name", "tune-logs", "--json")

    assert result.returncode == 1
    line = error_line(result.stderr)
    log = job_dir(tune_env, "tune-logs-t000").resolve() / "train.log"
    assert line.endswith(f"its log: {log}") and log.is_file()
    result = tune_env.cli("train", "--from-tuning", "latest")
    assert result.returncode == 1 and "has no completed trial" in error_line(result.stderr)


def test_a_trial_whose_objective_is_nan_fails_as_diverged(tune_env, tmp_path):
    """Optuna fails a trial told nan by itself; the trial was shown Completed with objective
    NaN (and --json printed NaN, which is no JSON)."""
    from tests.backends.local_tuning.conftest import WEIGHTS

    state = torch.load(WEIGHTS, weights_only=True)
    state = {key: (value.float().fill_(float("nan")) if key.startswith("classifier") else value) for key, value in state.items()}
    poisoned = tmp_path / "nan-head.pth"
    torch.save(state, poisoned)
    tune_env.write_config(
        model={"weights": str(poisoned)},
        train={"weight_decay": 0.0},
        tune={"max_jobs": 1, "objective": {"metric": "valid_loss", "type": "Minimize"}},
    )
    result = tune_env.cli("tune", "--name", "tune-nan", "--json")

    assert result.returncode == 1 and result.stdout == ""
    line = error_line(result.stderr)
    assert "diverged: valid_loss was nan" in line, line
    (trial,) = tune_env.ledger.list("trial", parent="tune-nan")
    assert trial.state == "Failed" and "diverged" in trial.meta["failure"]


def test_sigterm_to_a_waiting_train_stops_its_job(tune_env):
    tune_env.write_config(train={**UNCACHED, "epochs": 200})
    proc = _start_cli(tune_env, "train", "--name", "train-term")
    try:
        status = job_dir(tune_env, "train-term") / "status.json"

        def epoch_logged():
            log = job_dir(tune_env, "train-term") / "train.log"
            return log.is_file() and "epoch=1 " in log.read_text()

        wait_for(epoch_logged, what="the job's first epoch")
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130
    assert json.loads(status.read_text())["state"] == "Stopped"
    assert _live_pids(tune_env) == []
