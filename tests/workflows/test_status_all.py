"""`dogbreed status --all`: the jobs that ended beside what is live; and the errors that
point to it (`report` and `train --from-tuning` given a job that is not there, or `report`
on a job that failed before it recorded anything)."""

from __future__ import annotations

import json

from dogbreed.ledger import Ledger
from tests.conftest import dogbreed_cli, error_line

FAILURE = "train.py: error: data/ds: the valid split is empty; training needs train and valid images"


def _workspace(tmp_path):
    ws = tmp_path / "ws"
    ledger = Ledger(ws / "ledger.sqlite")
    ledger.record("tuning-job", "search-1", "local", state="Completed")
    ledger.record("training-job", "done-1", "local", state="Completed")
    log = ws / "jobs" / "failed-1" / "train.log"
    ledger.record("training-job", "failed-1", "local", state="Failed", meta={"failure": FAILURE, "log_uri": str(log)})
    return ws


def test_all_adds_the_ended_jobs_after_the_live_rows_and_bills_nothing(tmp_path):
    ws = _workspace(tmp_path)
    plain = dogbreed_cli("status", "--json", "--set", f"workspace={ws}")
    assert plain.returncode == 0, plain.stderr
    assert json.loads(plain.stdout) == {"resources": []}

    every = dogbreed_cli("status", "--all", "--json", "--set", f"workspace={ws}")
    assert every.returncode == 0, every.stderr
    rows = json.loads(every.stdout)["resources"]
    assert [(r["kind"], r["name"], r["state"]) for r in rows] == [
        ("training-job", "done-1", "Completed"),
        ("training-job", "failed-1", "Failed"),
        ("tuning-job", "search-1", "Completed"),
    ]
    assert all(r["ended"] is True and r["est_cost_per_hour"] == 0.0 for r in rows)

    table = dogbreed_cli("status", "--all", "--set", f"workspace={ws}", env={"COLUMNS": "160"})
    assert table.returncode == 0, table.stderr
    assert "failed-1" in table.stdout and "Failed (unchecked)" not in table.stdout
    assert table.stdout.rstrip().endswith("Nothing is running.")  # no bill totalled for ended jobs


def test_report_on_a_job_that_failed_before_its_first_record_says_why(tmp_path):
    ws = _workspace(tmp_path)
    done = dogbreed_cli("report", "--set", f"workspace={ws}")  # the latest job: failed-1
    assert done.returncode == 1
    log = ws / "jobs" / "failed-1" / "train.log"
    assert error_line(done.stderr) == (
        f"error: training job failed-1 failed before it recorded anything, so there is nothing to report: "
        f"{FAILURE}; full log: {log}"
    )
    missing = dogbreed_cli("report", "nope", "--set", f"workspace={ws}")
    assert error_line(missing.stderr).endswith("list jobs with `dogbreed status --all`")


def test_train_from_a_tuning_job_that_is_not_there_says_which_case(tmp_path):
    ws = tmp_path / "empty-ws"
    latest = dogbreed_cli("train", "--from-tuning", "latest", "--set", f"workspace={ws}")
    assert error_line(latest.stderr) == "error: no tuning job in the ledger; run `dogbreed tune` first"
    named = dogbreed_cli("train", "--from-tuning", "serch-1", "--set", f"workspace={_workspace(tmp_path)}")
    assert error_line(named.stderr) == (
        "error: tuning job 'serch-1' not found in the ledger; list jobs with `dogbreed status --all`, "
        "or run `dogbreed tune` first"
    )
