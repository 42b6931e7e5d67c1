"""`dogbreed report` as users and CI run it: the console script on real jobs in a real ledger."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from dogbreed.ledger import Ledger
from dogbreed.report import plots
from dogbreed.report.records import read_records
from tests.conftest import dogbreed_cli
from tests.report.builders import evals, lines, meta, steps

pytestmark = pytest.mark.slow


def _answer(result) -> dict:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # exactly one JSON document on stdout


def test_report_on_the_latest_job_writes_html_and_pngs_and_answers_the_design_fields(trained):
    answer = _answer(trained.cli("report", "--json"))
    assert answer["job"] == trained.diverged  # recorded last, so the latest
    html = Path(answer["report_uri"])
    assert html == trained.workspace / "reports" / trained.diverged / "report.html"
    assert html.is_file() and html.read_text().startswith("<!DOCTYPE html>")
    expected = {"loss.png", "accuracy.png", "gradient_norms.png", "step_time.png", "utilisation.png", "reliability.png"}
    if plots.constant_learning_rate(read_records(trained.records(trained.diverged))) is None:
        expected.add("learning_rate.png")  # a schedule is drawn; a constant rate is one line of text
    assert {Path(p).name for p in answer["pngs"]} == expected
    for png in answer["pngs"]:
        with Image.open(png) as image:
            assert image.format == "PNG" and image.width >= 800
    assert [set(rule) >= {"name", "status", "detail"} for rule in answer["rules"]] == [True] * len(answer["rules"])
    statuses = {rule["name"]: rule["status"] for rule in answer["rules"]}
    assert statuses["loss_not_decreasing"] == "issue"
    assert answer["issues"] == sum(1 for rule in answer["rules"] if rule["status"] == "issue")
    ledger = Ledger(trained.workspace / "ledger.sqlite")
    assert ledger.get("report", trained.diverged).uri == str(html)


def test_report_names_a_job_and_renders_for_people_without_json(trained):
    result = trained.cli("report", trained.healthy)
    assert result.returncode == 0, result.stderr
    assert "loss_not_decreasing" in result.stdout and "report.html" in result.stdout
    assert (trained.workspace / "reports" / trained.healthy / "report.html").is_file()


def test_fail_on_rules_exits_1_with_one_line_naming_the_rules(trained):
    result = trained.cli("report", trained.diverged, "--fail-on-rules", "--json")
    assert result.returncode == 1
    assert json.loads(result.stdout)["job"] == trained.diverged  # the answer still comes first
    error = result.stderr.strip().splitlines()[-1]
    assert "loss_not_decreasing" in error and "report.html" in error and "Traceback" not in result.stderr


def test_a_missing_job_is_one_line_naming_it_and_how_to_list_jobs(trained):
    result = trained.cli("report", "no-such-job")
    assert result.returncode == 1 and result.stdout == ""
    (line,) = [line for line in result.stderr.splitlines() if "error" in line]
    assert "no-such-job" in line and "dogbreed status" in line


def test_report_with_no_jobs_at_all_says_to_train_first(tmp_path):
    result = dogbreed_cli("report", "--set", f"workspace={tmp_path / 'empty'}")
    assert result.returncode == 1 and "dogbreed train" in result.stderr


def test_fail_on_rules_exits_0_when_no_rule_flags_an_issue(tmp_path):
    workspace = tmp_path / ".dogbreed"
    data = workspace / "jobs" / "clean-job" / "output" / "data"
    data.mkdir(parents=True)
    falling = [2.3 - 0.04 * i for i in range(40)]
    records = lines([meta()], steps(falling), evals([2.0, 1.5, 1.1, 0.8], [2.05, 1.55, 1.15, 0.85]))
    (data / "records.jsonl").write_text("\n".join(records) + "\n")
    Ledger(workspace / "ledger.sqlite").record("training-job", "clean-job", "local", state="Completed")
    result = dogbreed_cli("report", "--fail-on-rules", "--json", "--set", f"workspace={workspace}")
    answer = _answer(result)
    assert answer["issues"] == 0 and answer["job"] == "clean-job"


def test_tuning_report_tabulates_trials_and_plots_each_hyperparameter(trained, tmp_path):
    workspace = tmp_path / ".dogbreed"
    ledger = Ledger(workspace / "ledger.sqlite")
    tuning = "tune-report-test"
    trials = [
        ("t000", {"lr": 1e-4, "batch_size": 16}, 0.4, "Completed"),
        ("t001", {"lr": 3e-3, "batch_size": 32}, 0.8, "Completed"),
        ("t002", {"lr": 5e-2, "batch_size": 64}, None, "Failed"),
    ]
    for number, (suffix, params, objective, state) in enumerate(trials):
        ledger.record(
            "trial",
            f"{tuning}-{suffix}",
            "local",
            state=state,
            parent=tuning,
            meta={
                "number": number,
                "params": params,
                "objective": objective,
                "state": state,
                "failure": "diverged" if state == "Failed" else None,
            },
        )
    best = f"{tuning}-t001"
    ledger.record(
        "tuning-job",
        tuning,
        "local",
        state="Completed",
        meta={
            "strategy": "Bayesian",
            "objective": {"metric": "valid_acc", "type": "Maximize"},
            "best": {"name": best, "params": trials[1][1], "objective": 0.8},
            "trials": 3,
        },
    )
    # The best trial's job left real records (the healthy run's).
    shutil.copytree(trained.workspace / "jobs" / trained.healthy / "output", workspace / "jobs" / best / "output")
    answer = _answer(dogbreed_cli("report", "--tuning", "latest", "--json", "--set", f"workspace={workspace}"))
    assert answer["job"] == tuning and answer["kind"] == "tuning-job" and answer["trials"] == 3
    assert {Path(p).name for p in answer["pngs"]} == {"objective.png", "hyperparameters.png"}
    assert {rule["name"] for rule in answer["rules"]} >= {"loss_not_decreasing", "overfit"}  # the best trial's
    html = Path(answer["report_uri"]).read_text()
    assert f"{best} (best)" in html and "diverged" in html and "log axes</td><td>lr" in html
    # The best trial got its own report, linked from this one by a path relative to it.
    best_page = workspace / "reports" / best / "report.html"
    assert answer["best_report"] == str(best_page) and best_page.is_file()
    assert f'<a href="../{best}/report.html">' in html
    assert f"Training job {best}" in best_page.read_text() and 'id="per-breed"' in best_page.read_text()
    missing = dogbreed_cli("report", "--tuning", "nope", "--set", f"workspace={workspace}")
    assert missing.returncode == 1 and "nope" in missing.stderr and "dogbreed status" in missing.stderr
