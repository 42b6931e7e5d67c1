"""deploy -> predict -> status -> teardown through the real console script, as users and CI
run it: subprocesses, --json, headless (stdin is not a terminal), a real model.tar.gz."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dogbreed.ledger import Ledger

pytestmark = pytest.mark.usefixtures("no_server_left")

# Udacity file names of examples/predict -> the Stanford Dogs breeds the model was trained on
# (compared case-insensitively: how labels are capitalised is the training package's choice).
EXPECTED = {
    "Basenji": "basenji",
    "Basset_hound": "basset",
    "Beagle": "beagle",
    "Boston_terrier": "Boston bull",
    "Boxer": "boxer",
    "Collie": "collie",
    "German_shepherd_dog": "German shepherd",
    "Golden_retriever": "golden retriever",
    "Great_pyrenees": "Great Pyrenees",
    "Saint_bernard": "Saint Bernard",
}
DOGBREED = str(Path(sys.executable).parent / "dogbreed")


def cli(cwd: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [DOGBREED, *args],
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=600,
        env={k: v for k, v in {**os.environ, **(env or {})}.items() if v is not None},
    )


def answer(run: subprocess.CompletedProcess) -> dict:
    return json.loads(run.stdout)  # exactly one JSON document, or this fails


def expected_label(image: str) -> str | None:
    return EXPECTED.get(Path(image).stem.rsplit("_", 1)[0])


def test_deploy_predict_status_teardown(tmp_path, model_tar, predict_dir):
    # The training step records its model; "latest" finds it.
    Ledger(tmp_path / ".dogbreed" / "ledger.sqlite").record(
        "model", "train-1", "local", uri=str(model_tar), parent="train-1", meta={"training_job": "train-1"}
    )
    plan = cli(tmp_path, "deploy", "--port", "0", "--ttl", "20m", "--dry-run", "--json")
    assert plan.returncode == 0, plan.stderr
    assert answer(plan)["dry_run"] is True and answer(plan)["plan"]["model_uri"] == str(model_tar)

    deployed = cli(tmp_path, "deploy", "--port", "0", "--ttl", "20m", "--json")
    assert deployed.returncode == 0, deployed.stderr
    endpoint = answer(deployed)
    assert (endpoint["endpoint"], endpoint["backend"], endpoint["state"]) == ("dogbreed", "local", "in-service")
    assert endpoint["url"].startswith("http://127.0.0.1:") and endpoint["expires_at"]
    assert Path(endpoint["model_dir"]).is_relative_to(tmp_path / ".dogbreed" / "endpoints" / "dogbreed")

    predicted = cli(tmp_path, "predict", str(predict_dir), "--top-k", "3", "--json")
    assert predicted.returncode == 0, predicted.stderr
    result = answer(predicted)
    assert result["endpoint"] == "dogbreed" and result["errors"] == []
    assert len(result["predictions"]) == 11 and all(len(p["top"]) == 3 for p in result["predictions"])
    dogs = [p for p in result["predictions"] if expected_label(p["image"])]
    right = sum(p["top"][0]["label"].lower() == expected_label(p["image"]).lower() for p in dogs)
    assert len(dogs) == 10 and right >= 8

    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"this is not a photo")
    partial = cli(tmp_path, "predict", str(broken), str(predict_dir / "Beagle_01141.jpg"), "--json")
    assert partial.returncode == 1  # any failed image fails the command, after printing everything
    rows = answer(partial)
    assert [p["top"][0]["label"].lower() for p in rows["predictions"]] == ["beagle"]
    assert rows["errors"][0]["image"] == str(broken) and "HTTP 400" in rows["errors"][0]["error"]
    assert "1 of 2 images failed" in partial.stderr

    live = answer(cli(tmp_path, "status", "--json"))["resources"]
    assert [(r["kind"], r["name"], r["state"], r["est_cost_per_hour"]) for r in live] == [
        ("endpoint", "dogbreed", "in-service", 0.0)
    ]
    # For people: in a log (no terminal, no COLUMNS) the table is laid out wide, not cut at 80
    # columns; in a narrow terminal the URL goes below it, and no cell is cut short.
    logged = cli(tmp_path, "status", env={"COLUMNS": None}).stdout
    row = next(line for line in logged.splitlines() if "dogbreed" in line)
    assert "…" not in logged and "in-service" in row and endpoint["url"] in row
    narrow = cli(tmp_path, "status", env={"COLUMNS": "80"}).stdout
    assert max(map(len, narrow.splitlines())) <= 80 and "…" not in narrow
    assert f"dogbreed: {endpoint['url']}" in narrow.splitlines()

    first = cli(tmp_path, "teardown", "--json")  # stdin is not a terminal: no question asked
    assert first.returncode == 0, first.stderr
    assert (answer(first)["deleted"], answer(first)["not_found"]) == (["dogbreed"], [])
    again = cli(tmp_path, "teardown", "dogbreed", "--json")
    assert again.returncode == 0 and (answer(again)["deleted"], answer(again)["not_found"]) == ([], ["dogbreed"])
    assert answer(cli(tmp_path, "status", "--json"))["resources"] == []

    dead = cli(tmp_path, "predict", str(predict_dir / "Beagle_01141.jpg"), "--endpoint", "dogbreed", "--json")
    assert dead.returncode == 1
    assert "endpoint dogbreed (local) is gone" in dead.stderr and "dogbreed deploy --endpoint dogbreed" in dead.stderr


def test_predict_client_imports_no_torch(tmp_path, served, predict_dir):
    """The CLI's predict path, run in a fresh interpreter against a live endpoint."""
    Ledger(tmp_path / ".dogbreed" / "ledger.sqlite").record(
        "endpoint", "test-endpoint", "local", uri=served.url, state="in-service", meta={"pid": served.process.pid}
    )
    script = (
        "import sys\n"
        "from dogbreed.cli.app import run\n"
        f"code = run(['predict', {str(predict_dir / 'Beagle_01141.jpg')!r}, '--json'])\n"
        "heavy = sorted(m for m in ('torch', 'torchvision', 'boto3', 'sagemaker') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
        "sys.exit(code)\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
        env={**os.environ},
    )
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["predictions"][0]["top"][0]["label"].lower() == "beagle"


def test_deploy_without_any_model_is_one_line(tmp_path):
    run = cli(tmp_path, "deploy", "--json")
    assert run.returncode == 1 and run.stdout == ""
    assert "no trained model in the ledger" in run.stderr and len(run.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(("reply", "code", "state"), [("n", 130, "gone"), ("y", 0, "deleted")])
def test_teardown_asks_first_on_a_terminal(tmp_path, reply, code, state):
    import pty

    Ledger(tmp_path / ".dogbreed" / "ledger.sqlite").record("endpoint", "dogbreed", "local", state="gone")
    controller, terminal = pty.openpty()
    try:
        os.write(controller, f"{reply}\n".encode())  # the terminal buffers the answer for the prompt
        run = subprocess.run([DOGBREED, "teardown"], cwd=tmp_path, stdin=terminal, capture_output=True, text=True, timeout=300)
    finally:
        os.close(controller)
        os.close(terminal)
    assert "Delete 1 local endpoint(s): dogbreed?" in run.stderr
    assert run.returncode == code
    assert Ledger(tmp_path / ".dogbreed" / "ledger.sqlite").get("endpoint", "dogbreed", "local").state == state


def test_a_teardown_typo_fails_and_names_the_live_endpoint(tmp_path):
    ledger = Ledger(tmp_path / ".dogbreed" / "ledger.sqlite")
    ledger.record("endpoint", "dogbreed-demo", "local", state="in-service", meta={"pid": 0})
    typo = cli(tmp_path, "teardown", "dogbreed-dem0", "--json")
    assert typo.returncode == 1
    assert answer(typo) == {"deleted": [], "not_found": ["dogbreed-dem0"], "dry_run": False}  # still one JSON answer
    assert "did you mean dogbreed-demo?" in typo.stderr and len(typo.stderr.strip().splitlines()) == 1
    assert ledger.get("endpoint", "dogbreed-demo", "local").state == "in-service"  # untouched

    scripted = cli(tmp_path, "teardown", "dogbreed-dem0", "--ignore-missing", "--json")
    assert scripted.returncode == 0, scripted.stderr
    assert answer(scripted)["not_found"] == ["dogbreed-dem0"]
