"""`dogbreed report` on a job whose files beside its records are damaged: it says which file
and why, and does not also claim the file is missing."""

from __future__ import annotations

import json

import pytest

from dogbreed.ledger import Ledger
from tests.conftest import dogbreed_cli
from tests.report.builders import T0, evals, lines, meta, steps


@pytest.mark.parametrize("content", [b"", b'{"format": 1, "top1": 0.', b"\x00\xff garbage"])
def test_a_damaged_evaluation_json_is_named_not_called_missing(tmp_path, content):
    workspace = tmp_path / ".dogbreed"
    data = workspace / "jobs" / "job-a" / "output" / "data"
    data.mkdir(parents=True)
    final = {"type": "final", "time": T0 + 200, "best_epoch": 2, "test_acc": 0.5, "test_loss": 1.0}
    records = lines([meta()], steps([2.3 - 0.04 * i for i in range(20)]), evals([2.0, 1.5], [2.05, 1.55]), [final])
    (data / "records.jsonl").write_text("\n".join(records) + "\n")
    (data / "evaluation.json").write_bytes(content)
    Ledger(workspace / "ledger.sqlite").record("training-job", "job-a", "local", state="Completed")
    result = dogbreed_cli("report", "job-a", "--set", f"workspace={workspace}")
    assert result.returncode == 0, result.stderr
    said = result.stdout + result.stderr
    assert "evaluation.json is not readable JSON" in said
    assert "no evaluation.json" not in said  # it is there, damaged: not "the job had no test split"
    assert (workspace / "reports" / "job-a" / "report.html").is_file()
    answer = json.loads(dogbreed_cli("report", "job-a", "--json", "--set", f"workspace={workspace}").stdout)
    assert answer["evaluation"] is None


def _job(workspace):
    data = workspace / "jobs" / "job-a" / "output" / "data"
    data.mkdir(parents=True)
    records = lines([meta()], steps([2.3 - 0.04 * i for i in range(20)]), evals([2.0, 1.5], [2.05, 1.55]))
    (data / "records.jsonl").write_text("\n".join(records) + "\n")
    Ledger(workspace / "ledger.sqlite").record("training-job", "job-a", "local", state="Completed")


def test_a_report_location_taken_by_a_file_or_a_folder_is_one_line(tmp_path):
    """Were `unexpected FileExistsError` and `unexpected IsADirectoryError`."""
    workspace = tmp_path / ".dogbreed"
    _job(workspace)
    (workspace / "reports").mkdir()
    (workspace / "reports" / "job-a").write_text("not a folder")
    result = dogbreed_cli("report", "job-a", "--set", f"workspace={workspace}")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: {workspace / 'reports' / 'job-a'} is a file where a folder is needed; move it away and run the command again"
    )
    (workspace / "reports" / "job-a").unlink()
    (workspace / "reports" / "job-a" / "report.html").mkdir(parents=True)
    result = dogbreed_cli("report", "job-a", "--set", f"workspace={workspace}")
    assert result.returncode == 1
    html = workspace / "reports" / "job-a" / "report.html"
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: {html} is a folder where a file is needed; move it away and run the command again"
    )
    assert "unexpected" not in result.stderr
    html.rmdir()
    assert dogbreed_cli("report", "job-a", "--set", f"workspace={workspace}").returncode == 0  # a rerun recovers
    assert html.is_file()


def _strict(text: str):
    def refuse(constant: str):
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


def test_nan_and_infinity_in_a_jobs_files_answer_as_null_in_strict_json(tmp_path):
    """A diverged run's losses reached --json as NaN and Infinity, which jq and JSON.parse refuse."""
    workspace = tmp_path / ".dogbreed"
    _job(workspace)
    data = workspace / "jobs" / "job-a" / "output" / "data"
    final = {"best_epoch": 2, "valid_loss": float("nan"), "valid_acc": 0.5, "test_loss": float("inf"), "test_acc": 0.5}
    (data / "metrics.json").write_text(json.dumps({"final": final, "timing": {"training": float("nan"), "setup": 1.5}}))
    result = dogbreed_cli("report", "job-a", "--json", "--set", f"workspace={workspace}")
    assert result.returncode == 0, result.stderr
    answer = _strict(result.stdout)
    assert answer["summary"]["test_loss"] is None and answer["job"] == "job-a"
