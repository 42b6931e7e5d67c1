"""`dogbreed train` on the local backend: the real train.py, real photos, real weights."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from dogbreed.ledger import Ledger
from tests.conftest import dogbreed_cli, interruptible

pytestmark = pytest.mark.slow


@pytest.fixture
def project(tmp_path, dogs_dir, imagenet_weights):
    """A workspace with the vendored photos ingested, and a config that uses the vendored weights."""
    config = tmp_path / "config.yaml"
    config.write_text(
        f"workspace: {tmp_path / '.dogbreed'}\n"
        f"model:\n  weights: {imagenet_weights}\n"
        "train:\n  epochs: 3\n  lr: 0.01\n  num_workers: 0\n"
    )
    result = dogbreed_cli("ingest", str(dogs_dir), "-c", str(config), "--json")
    assert result.returncode == 0, result.stderr
    return tmp_path, config


def _ledger(root: Path) -> Ledger:
    return Ledger(root / ".dogbreed" / "ledger.sqlite")


def test_train_runs_the_job_packs_the_model_and_records_it(project):
    root, config = project
    result = dogbreed_cli("train", "-c", str(config), "--json", env={"DOGBREED_PROGRESS_SECONDS": "0.5"})
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["state"] == "Completed" and answer["backend"] == "local"
    # --json keeps stdout to the answer, and stderr carries the job's log as plain lines.
    log_lines = result.stderr.splitlines()
    assert "feature cache: extracting train.view0, valid.view0, test.view0…" in log_lines
    assert sum(line.startswith("epoch=") for line in log_lines) == 3 and "\x1b[" not in result.stderr
    metrics = answer["metrics"]
    assert {"valid_acc", "valid_loss", "test_acc", "test_loss"} <= set(metrics)
    assert metrics["test_acc"] >= 0.3  # 10 breeds: at least 3x chance with the ImageNet backbone
    assert len(answer["history"]) == 3
    # The metrics come from the job's own log lines, through the SageMaker regexes.
    log = Path(answer["log_uri"]).read_text()
    assert f"test_acc={metrics['test_acc']:.6g}" in log
    with tarfile.open(answer["model_uri"]) as archive:
        names = set(archive.getnames())
    assert {"model.pth", "classes.json", "hyperparameters.json", "code/inference.py"} <= names
    # The job saw SageMaker's input config files and environment.
    job_dir = Path(answer["model_uri"]).parent
    hps = json.loads((job_dir / "input/config/hyperparameters.json").read_text())
    assert hps["lr"] == "0.01" and hps["batch-size"] == "32"
    ledger = _ledger(root)
    job = ledger.latest("training-job")
    assert job.name == answer["training_job"] and job.state == "Completed"
    model = ledger.latest("model")
    assert model.uri == answer["model_uri"] and model.meta["training_job"] == job.name


def test_the_metrics_are_the_kept_epochs_not_a_mix_of_the_last_and_the_kept(project):
    root, config = project
    # lr 0.01 on these photos keeps epoch 1 (valid_acc 0.8 throughout, its valid_loss the lowest).
    result = dogbreed_cli("train", "-c", str(config), "--json")
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    metrics, history = answer["metrics"], answer["history"]
    kept = history[int(metrics["best_epoch"]) - 1]
    assert metrics["best_epoch"] < 3, history  # else the run shows nothing
    for name in ("train_loss", "train_acc", "valid_loss", "valid_acc"):
        assert metrics[name] == kept[name], name
    assert (metrics["train_loss"], metrics["train_acc"]) != (history[-1]["train_loss"], history[-1]["train_acc"])
    assert metrics["last_epoch"] == 3 and [row["epoch"] for row in history] == [1, 2, 3]
    # The job's own final line says the same, for SageMaker's FinalMetricDataList.
    final_line = [line for line in Path(answer["log_uri"]).read_text().splitlines() if line.startswith("test_loss=")]
    assert f"best_epoch={metrics['best_epoch']:.6g} train_loss={kept['train_loss']:.6g}" in final_line[-1]
    # The ledger's row keeps what --json said.
    job = _ledger(root).get("training-job", answer["training_job"], "local")
    assert job.meta["metrics"] == metrics


def test_dry_run_prints_the_command_and_environment_and_runs_nothing(project):
    root, config = project
    result = dogbreed_cli("train", "-c", str(config), "--json", "--dry-run", "--set", "train.batch_size=16")
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["dry_run"] is True
    command = plan["command"]
    assert command[1].endswith("source_dir/train.py")
    assert command[command.index("--batch-size") + 1] == "16"
    assert plan["environment"]["SM_CHANNEL_TRAINING"] == plan["channels"]["training"]
    assert plan["environment"]["SM_MODEL_DIR"].endswith("/model")
    assert not (root / ".dogbreed" / "jobs").exists()
    assert _ledger(root).latest("training-job") is None


def test_no_wait_returns_at_once_and_a_later_command_records_the_outcome(project):
    root, config = project
    result = dogbreed_cli("train", "-c", str(config), "--json", "--no-wait")
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["state"] == "InProgress"
    name = answer["training_job"]
    status = root / ".dogbreed" / "jobs" / name / "status.json"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if status.exists() and json.loads(status.read_text()).get("state") in ("Completed", "Failed"):
            break
        time.sleep(0.5)
    assert json.loads(status.read_text())["state"] == "Completed"
    assert _ledger(root).latest("model") is None  # nobody has looked yet
    # Any later train (here a dry run) first syncs the ledger with what happened.
    dogbreed_cli("train", "-c", str(config), "--json", "--dry-run")
    assert _ledger(root).latest("model").name == name


def test_ctrl_c_stops_the_job_and_train_again_resumes_it(project):
    root, config = project
    exe = Path(sys.executable).parent / "dogbreed"
    # Without the feature cache an epoch takes seconds, so the interrupt lands mid-training.
    slow = ["--set", "train.feature_cache=false"]
    args = [str(exe), "train", "-c", str(config), *slow]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=interruptible)
    jobs = root / ".dogbreed" / "jobs"
    deadline = time.monotonic() + 300
    checkpoint = None
    while time.monotonic() < deadline and checkpoint is None:
        found = list(jobs.glob("*/checkpoints/*")) if jobs.exists() else []
        checkpoint = found[0] if found else None
        time.sleep(0.2)
    assert checkpoint is not None, "no checkpoint appeared"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "run the same command again to resume" in err
    job = _ledger(root).latest("training-job")
    assert job.state == "Stopped"
    job_dir = jobs / job.name
    assert json.loads((job_dir / "status.json").read_text())["state"] == "Stopped"
    # Nothing of the job is left running.
    pid = json.loads((job_dir / "status.json").read_text())["pid"]
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    epochs_before = (job_dir / "train.log").read_text().count("\nepoch=")
    assert 1 <= epochs_before < 3
    result = dogbreed_cli("train", "-c", str(config), "--json", *slow)
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["resumed"] is True and answer["training_job"] == job.name
    # One log holds both runs: had the second started over, it would hold more than 3 epochs.
    assert answer["state"] == "Completed" and [row["epoch"] for row in answer["history"]] == [1, 2, 3]


def test_a_failing_job_is_one_line_with_the_cause_and_the_log(project):
    _, config = project
    # resnet18 cannot load mobilenet_v2's state_dict: the job fails inside train.py.
    result = dogbreed_cli("train", "-c", str(config), "--set", "model.arch=resnet18")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("error: training job") and "failed" in lines[-1] and "train.log" in lines[-1]


def test_missing_dataset_and_weights_are_clear_errors(tmp_path, imagenet_weights):
    config = tmp_path / "c.yaml"
    config.write_text(f"workspace: {tmp_path / 'ws'}\n")
    result = dogbreed_cli("train", "-c", str(config))
    assert result.returncode == 1 and "run `dogbreed ingest" in result.stderr
    dataset = tmp_path / "ds"
    dataset.mkdir()
    result = dogbreed_cli("train", "-c", str(config), "--dataset", str(dataset), "--set", "model.weights=/no/such.pth")
    # A config error (exit 2) naming where the path came from.
    assert result.returncode == 2 and "--set model.weights: /no/such.pth not found" in result.stderr


def _finished(root: Path, job: str, limit_s: float = 600) -> None:
    status = root / ".dogbreed" / "jobs" / job / "status.json"
    deadline = time.monotonic() + limit_s
    while not (status.is_file() and json.loads(status.read_text()).get("state") in ("Completed", "Failed", "Stopped")):
        assert time.monotonic() < deadline, f"job {job} did not finish"
        time.sleep(0.1)


def test_a_no_wait_job_that_status_saw_finish_still_gives_deploy_its_model(project):
    """Issue 15 (the ledger loses track): `status` marked a finished --no-wait job Completed
    without recording its model, and later syncs looked only at jobs in progress, so
    `deploy` said "no trained model in the ledger" beside a model.tar.gz."""
    root, config = project
    started = dogbreed_cli("train", "-c", str(config), "--no-wait", "--json")
    assert started.returncode == 0, started.stderr
    job = json.loads(started.stdout)["training_job"]
    _finished(root, job)

    status = dogbreed_cli("status", "-c", str(config), "--json")
    assert status.returncode == 0, status.stderr
    ledger = _ledger(root)
    assert ledger.get("training-job", job, "local").state == "Completed"
    model = ledger.get("model", job, "local")
    assert model is not None and Path(model.uri).is_file() and model.uri.endswith("model.tar.gz")
    # A dry run reads the ledger only (no sync): the model must already be there.
    plan = dogbreed_cli("deploy", "-c", str(config), "--dry-run", "--json")
    assert plan.returncode == 0, plan.stderr
    assert json.loads(plan.stdout)["plan"]["model_uri"] == model.uri


def test_a_job_the_ledger_calls_completed_without_its_model_is_synced(project):
    """A row left Completed with no model (by an older `status`, or a sync cut short) is
    not skipped by later syncs: deploy's sync records the model."""
    from dogbreed.backends.local import LocalBackend
    from dogbreed.config import load_config
    from dogbreed.workflows.train import sync
    from dogbreed.workspace import Workspace

    root, config = project
    started = dogbreed_cli("train", "-c", str(config), "--no-wait", "--json")
    job = json.loads(started.stdout)["training_job"]
    _finished(root, job)
    ledger = _ledger(root)
    ledger.update("training-job", job, "local", state="Completed")  # what main's status left
    assert ledger.get("model", job, "local") is None

    loaded = load_config([config])
    recorded = sync(ledger, LocalBackend(loaded, Workspace(Path(loaded.workspace))))
    assert [outcome.name for outcome in recorded] == [job]
    model = ledger.get("model", job, "local")
    assert model is not None and model.uri == recorded[0].model_uri
    assert sync(ledger, LocalBackend(loaded, Workspace(Path(loaded.workspace)))) == []  # once


def _snapshot(job_dir: Path) -> dict[str, tuple[bytes, int]]:
    """Every file of a job folder: its bytes and modification time (a repacked model changes both)."""
    return {
        str(path.relative_to(job_dir)): (path.read_bytes(), path.stat().st_mtime_ns)
        for path in sorted(job_dir.rglob("*"))
        if path.is_file() and path.name != ".lock"
    }


def test_a_completed_jobs_name_is_refused_with_other_settings_and_answers_with_its_model_with_the_same(project):
    root, config = project
    one_epoch = ["--set", "train.epochs=1"]
    first = dogbreed_cli("train", "-c", str(config), "--name", "sig-3", "--json", *one_epoch)
    assert first.returncode == 0, first.stderr
    job_dir = root / ".dogbreed" / "jobs" / "sig-3"
    ledger = _ledger(root)
    job = ledger.get("training-job", "sig-3", "local")
    assert job.state == "Completed", job
    files, rows = _snapshot(job_dir), (job, ledger.get("model", "sig-3", "local"))

    refused = dogbreed_cli("train", "-c", str(config), "--name", "sig-3", "--set", "train.epochs=2")
    assert refused.returncode == 2, refused.stderr
    assert refused.stderr.strip().splitlines() == [
        "error: training job sig-3 exists with other settings (epochs 1, not 2); "
        "give another --name, or run with the same settings to get its model"
    ]
    assert _snapshot(job_dir) == files
    assert (ledger.get("training-job", "sig-3", "local"), ledger.get("model", "sig-3", "local")) == rows

    again = dogbreed_cli("train", "-c", str(config), "--name", "sig-3", "--json", *one_epoch)
    assert again.returncode == 0, again.stderr
    answer = json.loads(again.stdout)
    assert answer["state"] == "Completed" and answer["model_uri"] == str(job_dir / "model.tar.gz")
    assert answer["resumed"] is False and "already completed" in again.stderr
    assert _snapshot(job_dir) == files  # not trained again, not repacked
    assert (ledger.get("training-job", "sig-3", "local"), ledger.get("model", "sig-3", "local")) == rows


def _lose_the_ledger(root: Path) -> None:
    """The ledger deleted: a job's folder alone says what ran in it."""
    for ledger_file in (root / ".dogbreed").glob("ledger.sqlite*"):
        ledger_file.unlink()


def test_a_job_folder_the_ledger_lost_is_checked_against_its_own_request_before_it_is_touched(project):
    root, config = project
    one_epoch = ["--set", "train.epochs=1"]
    first = dogbreed_cli("train", "-c", str(config), "--name", "orphan", "--json", *one_epoch)
    assert first.returncode == 0, first.stderr
    one_epoch += ["--dataset", json.loads(first.stdout)["dataset_uri"]]  # the ledger that named it goes next
    _lose_the_ledger(root)
    job_dir = root / ".dogbreed" / "jobs" / "orphan"
    files = _snapshot(job_dir)

    refused = dogbreed_cli("train", "-c", str(config), "--name", "orphan", *one_epoch, "--set", "train.epochs=2")
    assert refused.returncode == 2, refused.stderr
    assert refused.stderr.strip().splitlines() == [
        "error: training job orphan exists with other settings (epochs 1, not 2); "
        "give another --name, or run with the same settings to resume it"
    ]
    assert _snapshot(job_dir) == files
    # With the settings it ran with, the folder is the job's: it runs (not refused).
    same = dogbreed_cli("train", "-c", str(config), "--name", "orphan", "--json", *one_epoch)
    assert same.returncode == 0, same.stderr
    assert json.loads(same.stdout)["state"] == "Completed"

    # A folder that does not say what it ran with is refused too, with what to do.
    _lose_the_ledger(root)
    request = job_dir / "request.json"
    request.write_text("{not json")
    files = _snapshot(job_dir)
    unreadable = dogbreed_cli("train", "-c", str(config), "--name", "orphan", *one_epoch)
    assert unreadable.returncode == 2, unreadable.stderr
    assert unreadable.stderr.strip().splitlines() == [
        f"error: training job folder {job_dir.resolve()} exists, but neither the ledger nor a readable request.json "
        "in it says what it ran with; give another --name, or delete that folder"
    ]
    assert _snapshot(job_dir) == files


def test_no_wait_without_json_is_a_line_for_people(project):
    root, config = project
    started = dogbreed_cli("train", "-c", str(config), "--name", "bg-1", "--no-wait", "--set", "train.epochs=1")
    assert started.returncode == 0, started.stderr
    assert not started.stdout.lstrip().startswith("{")  # was the JSON answer, as with --json
    job_dir = root / ".dogbreed" / "jobs" / "bg-1"
    assert started.stdout.splitlines() == [
        f"training job bg-1 started (local); log: {job_dir / 'train.log'}",
        "follow it with `dogbreed status`; when it ends, `dogbreed report bg-1`",
    ]
    status = job_dir / "status.json"
    deadline = time.monotonic() + 300  # not a check of speed: the job must end before its folder goes
    while time.monotonic() < deadline:
        if status.exists() and json.loads(status.read_text()).get("state") in ("Completed", "Failed"):
            break
        time.sleep(0.5)
