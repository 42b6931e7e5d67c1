"""`dogbreed tune` on the local backend, for real: trials are jobs of train.py on the vendored
photos with the vendored ImageNet weights, run by worker processes, through the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from dogbreed.backends.local_training import parse_log
from dogbreed.backends.local_tuning.study import TuningSetup, open_study
from tests.conftest import error_line, interruptible, wait_for

pytestmark = pytest.mark.slow

FINISHED = ("Completed", "Stopped", "Failed")
# For tests that must catch a trial mid-run: a cached, forked trial ends in about 0.3 s, so
# these run the backbone every epoch (seconds per trial), as the pruning test does.
UNCACHED = {"feature_cache": False}


def answer_of(result) -> dict:
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return json.loads(result.stdout)


def job_dir(env, trial_name: str) -> Path:
    return env.workspace / "jobs" / trial_name


def test_a_study_with_two_workers_runs_real_jobs_and_records_the_best_for_train(tune_env):
    tune_env.write_config(tune={"strategy": "Bayesian", "max_jobs": 3, "max_parallel_jobs": 2, "early_stopping": "Auto"})
    answer = answer_of(tune_env.cli("tune", "--name", "tune-two-workers", "--json"))

    assert answer["tuning_job"] == "tune-two-workers" and answer["strategy"] == "Bayesian"
    assert answer["state"] == "Completed" and answer["backend"] == "local"
    assert answer["objective"] == {"metric": "valid_acc", "type": "Maximize"}
    trials = answer["trials"]
    assert [t["name"] for t in trials] == [f"tune-two-workers-t{n:03d}" for n in range(3)]
    for trial in trials:
        assert trial["status"] in ("Completed", "Stopped")
        params = trial["params"]
        assert set(params) == {"lr", "epochs", "batch_size"}
        assert type(params["batch_size"]) is int and type(params["epochs"]) is int
        # Each trial is a real job with its own flags, log and metrics.
        job = job_dir(tune_env, trial["name"])
        argv = json.loads((job / "request.json").read_text())["argv"]
        assert argv[argv.index("--batch-size") + 1] == str(params["batch_size"])
        assert argv[argv.index("--lr") + 1] == str(params["lr"])
        if trial["status"] == "Completed":
            history, metrics = parse_log((job / "train.log").read_text())
            assert len(history) == params["epochs"]
            assert trial["objective"] == metrics["valid_acc"]  # the valid metric, never test
            assert trial["test_acc"] == metrics["test_acc"]  # reported for information
    completed = [t for t in trials if t["status"] == "Completed"]
    best = max(completed, key=lambda t: (t["objective"], -int(t["name"][-3:])))
    assert answer["best"]["name"] == best["name"] and answer["best"]["params"] == best["params"]

    # Two worker processes shared one study through the journal file, and every epoch of
    # every trial was reported to it (what the median rule and Hyperband judge).
    folder = tune_env.workspace.resolve() / "tuning" / "tune-two-workers"
    assert (folder / "journal.log").is_file()
    assert sorted(p.name for p in (folder / "workers").iterdir()) == ["0.pid", "1.pid"]
    study = open_study(TuningSetup.load(folder))
    for frozen, trial in zip(study.get_trials(), trials):
        assert len(frozen.intermediate_values) == trial["epochs"]

    # The ledger: the tuning job with its best params keyed by train.* names, and its trials.
    ledger = tune_env.ledger
    job = ledger.get("tuning-job", "tune-two-workers", "local")
    assert job.state == "Completed" and job.meta["trials"] == 3 and job.meta["strategy"] == "Bayesian"
    assert job.meta["best"] == {k: answer["best"][k] for k in ("name", "params", "objective")}
    assert job.meta["objective"] == {"metric": "valid_acc", "type": "Maximize"}
    records = sorted(ledger.list("trial", parent="tune-two-workers"), key=lambda r: r.name)
    assert [r.name for r in records] == [t["name"] for t in trials]
    assert all(r.meta["params"] == t["params"] and r.state == t["status"] for r, t in zip(records, trials))

    # `train --from-tuning` takes the best params from that record.
    plan = answer_of(tune_env.cli("train", "--from-tuning", "latest", "--dry-run", "--json"))
    command = plan["command"]
    assert command[command.index("--batch-size") + 1] == str(best["params"]["batch_size"])
    assert command[command.index("--lr") + 1] == str(best["params"]["lr"])


def _start_cli(env, *args: str) -> subprocess.Popen:
    exe = Path(sys.executable).parent / "dogbreed"
    # Its own session: killing its process group kills the CLI and its workers at once,
    # as a CI timeout or a closed terminal would.
    return subprocess.Popen(
        [str(exe), *args, "-c", str(env.config)],
        cwd=env.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=interruptible,
    )


def test_a_killed_study_resumes_without_rerunning_finished_trials(tune_env):
    tune_env.write_config(train=UNCACHED, tune={"max_jobs": 3, "max_parallel_jobs": 1})
    proc = _start_cli(tune_env, "tune", "--name", "tune-killed", "--json")
    try:

        def one_done_one_running():
            states = [r.state for r in tune_env.ledger.list("trial", parent="tune-killed")]
            return states.count("Completed") >= 1 and "InProgress" in states

        wait_for(one_done_one_running, what="a completed trial and a running one")
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    before = {r.name: r for r in tune_env.ledger.list("trial", parent="tune-killed") if r.state == "Completed"}
    assert tune_env.ledger.get("tuning-job", "tune-killed", "local").state == "InProgress"

    answer = answer_of(tune_env.cli("tune", "--name", "tune-killed", "--json"))

    assert answer["resumed"] is True and answer["state"] == "Completed"
    trials = {t["name"]: t for t in answer["trials"]}
    for name, record in before.items():
        assert trials[name]["status"] == "Completed" and trials[name]["objective"] == record.meta["objective"]
        log = (job_dir(tune_env, name) / "train.log").read_text()
        assert log.count("starting:") == 1, f"{name} ran again"
    counted = [t for t in trials.values() if t["status"] in FINISHED and not t["retried"]]
    assert len(counted) == 3
    for retried in (t for t in trials.values() if t["retried"]):
        # The interrupted trial's point was tried again by a later trial.
        assert retried["status"] == "Failed" and "interrupted" in retried["failure"]
        assert any(t["params"] == retried["params"] and not t["retried"] for t in trials.values())


def test_a_failed_trial_is_recorded_and_the_study_goes_on(tune_env):
    tune_env.write_config(train=UNCACHED, tune={"max_jobs": 2, "max_parallel_jobs": 1})
    proc = _start_cli(tune_env, "tune", "--name", "tune-oom", "--json")
    try:
        status = job_dir(tune_env, "tune-oom-t000") / "status.json"

        def train_py_pid():
            try:
                return json.loads(status.read_text()).get("pid")
            except (OSError, ValueError):
                return None

        # The kernel's OOM killer, as far as the trial can tell: SIGKILL to train.py.
        os.kill(wait_for(train_py_pid, what="trial t000's train.py"), signal.SIGKILL)
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0, err
    answer = json.loads(out)
    statuses = {t["name"]: t for t in answer["trials"]}
    failed = statuses["tune-oom-t000"]
    assert failed["status"] == "Failed" and "exited with code -9" in failed["failure"]
    assert [t["status"] for n, t in statuses.items() if n != "tune-oom-t000"] == ["Completed"]
    assert answer["best"]["name"] != "tune-oom-t000"
    record = tune_env.ledger.get("trial", "tune-oom-t000", "local")
    assert record.state == "Failed" and "exited with code -9" in record.meta["failure"]


def test_when_every_trial_fails_the_command_fails_with_the_first_error(tune_env, tmp_path):
    broken = tmp_path / "broken.pth"
    broken.write_bytes(b"not a state_dict")
    tune_env.write_config(model={"weights": str(broken)}, tune={"max_jobs": 2})
    result = tune_env.cli("tune", "--name", "tune-broken", "--json")

    assert result.returncode == 1 and result.stdout == ""
    lines = [error_line(result.stderr)]  # after the trials' plain log lines
    assert "every trial of tuning job tune-broken failed" in lines[0]
    assert "tune-broken-t000" in lines[0] and "cannot read weights file" in lines[0]
    assert tune_env.ledger.get("tuning-job", "tune-broken", "local").state == "Failed"
    assert [r.state for r in tune_env.ledger.list("trial", parent="tune-broken")] == ["Failed", "Failed"]


def test_no_wait_starts_detached_workers_and_a_later_tune_follows_them(tune_env):
    tune_env.write_config(tune={"max_jobs": 1})
    started = answer_of(tune_env.cli("tune", "--name", "tune-later", "--no-wait", "--json"))
    assert started["state"] == "InProgress" and started["workers"]

    # Followed the way people do in a CI log: no --json, stderr not a terminal.
    result = tune_env.cli("tune", "--name", "tune-later")
    assert result.returncode == 0, result.stderr
    assert "tune-later-t000 Completed" in result.stderr and "valid_acc=" in result.stderr
    assert "best trial tune-later-t000" in result.stdout and "--from-tuning tune-later" in result.stdout
    assert tune_env.ledger.get("tuning-job", "tune-later", "local").state == "Completed"
    # It followed the detached workers instead of starting a second set.
    workers = tune_env.workspace / "tuning" / "tune-later" / "workers"
    assert [p.name for p in workers.iterdir()] == ["0.pid"]
    assert int((workers / "0.pid").read_text()) == started["workers"][0]


def _launched(env):
    """A local tuning job of env's config with its workers started, in this process as the CLI
    runs it; returns what follows it to the end with a view of the test's own."""
    from dogbreed.backends.local import LocalBackend
    from dogbreed.config import load_config
    from dogbreed.workflows import tune as workflow
    from dogbreed.workspace import Workspace

    config = load_config([env.config])
    backend = LocalBackend(config, Workspace(env.workspace))
    plan = workflow.plan(config, env.ledger, backend)
    workflow.start(env.ledger, backend, plan, wait=True)
    return lambda show: workflow.wait(env.ledger, backend, plan, show)


def test_ctrl_c_after_the_last_trial_finished_reports_the_completed_job(tune_env):
    """Ctrl-C that lands between the last trial's end and the answer is not an interruption."""
    tune_env.write_config(tune={"max_jobs": 2})
    run = _launched(tune_env)
    seen = []

    def ctrl_c_once_all_finished(records):
        seen.append([r.state for r in records])
        if len(records) == 2 and all(r.state in FINISHED for r in records):
            raise KeyboardInterrupt

    answer = run(ctrl_c_once_all_finished)
    assert seen[-1] == ["Completed", "Completed"]  # the Ctrl-C was raised, and absorbed
    assert answer["state"] == "Completed" and [t["status"] for t in answer["trials"]] == ["Completed"] * 2
    assert answer["best"]["name"] in {t["name"] for t in answer["trials"]}
    assert tune_env.ledger.get("tuning-job", answer["tuning_job"], "local").state == "Completed"


def test_ctrl_c_during_a_trial_propagates_and_leaves_a_stopped_job(tune_env):
    tune_env.write_config(train=UNCACHED, tune={"max_jobs": 2})
    run = _launched(tune_env)

    def ctrl_c_while_running(records):
        if any(r.state == "InProgress" for r in records):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(ctrl_c_while_running)
    (record,) = tune_env.ledger.list("tuning-job")
    assert record.state == "Stopped"
    assert all(t.state in FINISHED for t in tune_env.ledger.list("trial", parent=record.name))  # the running job was stopped


def test_ctrl_c_stops_every_job_and_tune_again_resumes_the_latest_unfinished_job(tune_env):
    tune_env.write_config(train=UNCACHED, tune={"max_jobs": 2, "max_parallel_jobs": 2})
    proc = _start_cli(tune_env, "tune", "--json")
    try:

        def running_jobs():
            records = tune_env.ledger.list("trial")
            return len(records) == 2 and all(r.state == "InProgress" for r in records)

        wait_for(running_jobs, what="two running trials")
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C sends: the whole group
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130 and out == "" and "run the same command again to resume" in err
    (job,) = tune_env.ledger.list("tuning-job")
    assert job.state == "Stopped"
    for status in (tune_env.workspace / "jobs").glob("*/status.json"):
        assert json.loads(status.read_text())["state"] in ("Stopped", "Completed")  # nothing left running

    answer = answer_of(tune_env.cli("tune", "--json"))  # no --name: the latest unfinished job
    assert answer["tuning_job"] == job.name and answer["resumed"] is True and answer["state"] == "Completed"
    counted = [t for t in answer["trials"] if not t["retried"]]
    assert len(counted) == 2 and all(t["status"] == "Completed" for t in counted)
