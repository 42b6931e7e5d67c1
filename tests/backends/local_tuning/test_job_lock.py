"""One tuning job, one `tune` (#15 item 1): two `dogbreed tune` of the same job in one workspace
never both run it. The one that comes second is refused with one line naming the job and the
pid of the process that runs it, and exits 1; the job runs its trial budget once.

Real CLI processes on a real workspace (tests/backends/local_tuning/conftest.py); whatever they leave
running is killed by pid at teardown."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from dogbreed.backends.local_tuning.study import TuningSetup, open_study
from dogbreed.job_lock import JobLock
from tests.backends.local_tuning.test_tune_local import _start_cli
from tests.conftest import error_line, wait_for

pytestmark = pytest.mark.slow

DOGBREED = str(Path(sys.executable).parent / "dogbreed")
# Trials that run the backbone every epoch: seconds each, so both commands overlap.
UNCACHED = {"feature_cache": False}


def _together(env, *argvs: list[str]) -> list[tuple[subprocess.Popen, str, str]]:
    """Start the commands at the same moment; wait for all; (process, stdout, stderr) each."""
    procs = [
        subprocess.Popen(
            [DOGBREED, *argv, "-c", str(env.config)], cwd=env.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for argv in argvs
    ]
    return [(proc, *proc.communicate(timeout=600)) for proc in procs]


def _journal_trials(env, name: str) -> int:
    folder = env.workspace.resolve() / "tuning" / name
    return len(open_study(TuningSetup.load(folder)).get_trials(deepcopy=False))


def test_two_tunes_of_one_job_at_once_run_it_once(tune_env):
    tune_env.write_config(train=UNCACHED, tune={"max_jobs": 2, "max_parallel_jobs": 1})
    args = ["tune", "--name", "tune-once", "--json"]
    results = _together(tune_env, args, args)

    codes = sorted(proc.returncode for proc, _, _ in results)
    assert codes == [0, 1], [err for _, _, err in results]
    winner = next((proc, out) for proc, out, _ in results if proc.returncode == 0)
    _, out, err = next(r for r in results if r[0].returncode == 1)
    assert out == ""
    line = error_line(err)
    assert line.startswith("error: tuning job tune-once is already running")
    assert f"(pid {winner[0].pid})" in line and "--name" in line  # the process to wait for or stop
    assert "Traceback" not in err

    answer = json.loads(winner[1])
    assert answer["state"] == "Completed" and [t["name"] for t in answer["trials"]] == ["tune-once-t000", "tune-once-t001"]
    # One set of workers, one run of each trial, and no third trial asked for by a second set.
    workers = tune_env.workspace / "tuning" / "tune-once" / "workers"
    assert [p.name for p in workers.iterdir()] == ["0.pid"]
    assert _journal_trials(tune_env, "tune-once") == 2
    for trial in answer["trials"]:
        log = (tune_env.workspace / "jobs" / trial["name"] / "train.log").read_text()
        assert log.count("starting:") == 1, f"{trial['name']} ran twice"


def test_two_resumes_of_a_killed_tuning_job_at_once_run_it_once(tune_env):
    """`tune` without --name resumes the latest unfinished search: two of them at once pick
    the same killed job, and only one runs it."""
    tune_env.write_config(train=UNCACHED, tune={"max_jobs": 2, "max_parallel_jobs": 1})
    killed = _start_cli(tune_env, "tune", "--name", "tune-resumed", "--json")
    try:
        wait_for(lambda: tune_env.ledger.list("trial", parent="tune-resumed"), what="the first trial")
    finally:
        os.killpg(killed.pid, signal.SIGKILL)  # the CLI and its workers, as a closed terminal would
        killed.communicate(timeout=60)

    results = _together(tune_env, ["tune", "--json"], ["tune", "--json"])

    codes = sorted(proc.returncode for proc, _, _ in results)
    assert codes == [0, 1], [err for _, _, err in results]
    _, out, err = next(r for r in results if r[0].returncode == 1)
    assert out == "" and "error: tuning job tune-resumed is already running (pid " in error_line(err)
    answer = json.loads(next(out for proc, out, _ in results if proc.returncode == 0))
    assert answer["tuning_job"] == "tune-resumed" and answer["resumed"] is True and answer["state"] == "Completed"
    counted = [t for t in answer["trials"] if t["status"] in ("Completed", "Stopped", "Failed") and not t["retried"]]
    assert len(counted) == 2  # the budget, once: no second set of workers asked for more


def test_a_tune_of_a_job_another_process_runs_is_refused_before_touching_it(tune_env):
    """Someone (here: this test) holds the job; `tune` of it, named or resumed, starts nothing."""
    tune_env.write_config(tune={"max_jobs": 1})
    folder = tune_env.workspace.resolve() / "tuning" / "tune-held"
    with JobLock(folder / "job.lock", "tuning job tune-held").hold():
        result = tune_env.cli("tune", "--name", "tune-held", "--json")
    assert result.returncode == 1 and result.stdout == ""
    line = error_line(result.stderr)
    assert f"error: tuning job tune-held is already running (pid {os.getpid()})" in line
    assert not (folder / "workers").exists() and not (folder / "setup.json").exists()
    assert not list((tune_env.workspace / "jobs").glob("tune-held-*"))
