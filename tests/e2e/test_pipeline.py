"""The main job end to end, as CI and users run it: every command a subprocess with --json,
every answer checked against DESIGN section 3, and nothing left running at the end."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import dogbreed_cli

pytestmark = pytest.mark.slow


def _run(*args: str, ok: bool = True) -> dict:
    result = dogbreed_cli(*args, "--json")
    if ok:
        assert result.returncode == 0, f"{args[0]}: {result.stderr}"
    document = json.loads(result.stdout)  # exactly one JSON document, nothing else on stdout
    return document


def _is_probability(value) -> bool:
    return isinstance(value, float) and 0.0 <= value <= 1.0


def test_ingest_tune_train_report_deploy_predict_teardown(tmp_path, repo_root, dogs_dir, predict_dir):
    workspace = tmp_path / "ws"
    options = [
        "-c", str(repo_root / "configs" / "local.yaml"),
        "-c", str(repo_root / "configs" / "demo.yaml"),
        "--set", f"workspace={workspace}",
        "--set", f"model.weights={repo_root / 'examples/weights/mobilenet_v2-imagenet1k-from-int8.fp16.pth'}",
        "--set", "tune.max_jobs=3",
        "--set", "deploy.endpoint_name=e2e-pipeline",
    ]  # fmt: skip

    ingest = _run("ingest", str(dogs_dir), *options)
    assert set(ingest) >= {"dataset_uri", "manifest_sha256", "num_classes", "splits", "uploaded", "skipped", "problems"}
    assert ingest["num_classes"] == 10 and ingest["splits"] == {"train": 80, "valid": 10, "test": 10}
    assert ingest["uploaded"] == 100 and ingest["skipped"] == 0 and ingest["problems"] == []
    assert len(ingest["manifest_sha256"]) == 64 and Path(ingest["dataset_uri"], "manifest.json").is_file()

    tune = _run("tune", *options)
    assert set(tune) >= {"tuning_job", "strategy", "trials", "best"}
    assert tune["strategy"] == "Bayesian" and len(tune["trials"]) == 3
    for trial in tune["trials"]:
        assert set(trial) >= {"name", "params", "objective", "status"}
        assert set(trial["params"]) == {"lr", "epochs", "label_smoothing", "batch_size"}  # demo.yaml's ranges
        assert isinstance(trial["params"]["batch_size"], int) and isinstance(trial["params"]["epochs"], int)
    completed = [t for t in tune["trials"] if t["status"] == "Completed"]
    assert completed and tune["best"]["objective"] == max(t["objective"] for t in completed)
    assert set(tune["best"]) >= {"name", "params", "objective"}

    train = _run("train", "--from-tuning", "latest", *options)
    assert set(train) >= {"training_job", "model_uri", "metrics"}
    assert {"valid_acc", "valid_loss", "test_acc"} <= set(train["metrics"])
    assert train["tuned_params"] == tune["best"]["params"]
    assert train["metrics"]["test_acc"] >= 0.3  # 10 breeds: at least 3x chance on photos it never saw
    assert Path(train["model_uri"]).name == "model.tar.gz"

    report = _run("report", *options)
    assert Path(report["report_uri"]).suffix == ".html" and Path(report["report_uri"]).is_file()
    assert report["rules"] and all(set(rule) >= {"name", "status", "detail"} for rule in report["rules"])
    assert {rule["name"] for rule in report["rules"]} >= {"vanishing_gradient", "loss_not_decreasing", "overfit"}

    deployed = False
    try:
        deploy = _run("deploy", *options)
        deployed = True
        assert set(deploy) >= {"endpoint", "backend", "url", "expires_at"}
        assert deploy["endpoint"] == "e2e-pipeline" and deploy["backend"] == "local"
        assert deploy["url"].startswith("http://127.0.0.1:")

        predict = _run("predict", str(predict_dir), "--top-k", "3", *options)
        predictions = predict["predictions"]
        assert len(predictions) == 11 and not predict.get("errors")
        labels = json.loads(Path(ingest["dataset_uri"], "manifest.json").read_text())["classes"]
        breeds = {row["label"] for row in labels}
        right = 0
        for answer in predictions:
            assert len(answer["top"]) == 3
            for guess in answer["top"]:
                assert set(guess) >= {"label", "index", "probability"} and _is_probability(guess["probability"])
                assert guess["label"] in breeds  # breed names, never class numbers
            stem = Path(answer["image"]).stem.rsplit("_", 1)[0].replace("_", " ").lower()
            top = answer["top"][0]["label"].lower()
            right += stem == top or {stem, top} <= {"basset hound", "basset"} or {stem, top} <= {
                "boston terrier", "boston bull"} or {stem, top} <= {"german shepherd dog", "german shepherd"}  # fmt: skip
        assert right >= 7  # of the 10 dogs (the cat cannot be right)

        status = _run("status", *options)
        live = [row for row in status["resources"] if row["kind"] == "endpoint"]
        assert [row["name"] for row in live] == ["e2e-pipeline"]
        assert set(live[0]) >= {"kind", "name", "backend", "created_at", "expires_at", "state", "est_cost_per_hour"}
    finally:
        if deployed:
            teardown = _run("teardown", "--all", "--yes", *options)
    assert teardown == {**teardown, "deleted": ["e2e-pipeline"], "not_found": []}
    again = _run("teardown", "--all", "--yes", *options)
    assert again["deleted"] == []
    assert [row for row in _run("status", *options)["resources"] if row["kind"] == "endpoint"] == []
    assert not any("dogbreed.serving" in line and "e2e-pipeline" in line for line in map(_cmdline, _pids()))


def _pids() -> list[int]:
    return [int(entry) for entry in os.listdir("/proc") if entry.isdigit()]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""
