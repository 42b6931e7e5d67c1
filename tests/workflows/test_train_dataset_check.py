"""`train --dataset` on a folder train.py would refuse: refused before any job exists."""

from __future__ import annotations

import shutil

from dogbreed.ledger import Ledger
from tests.conftest import dogbreed_cli, error_line
from tests.data.conftest import DOGS


def test_a_folder_that_is_no_dataset_is_refused_before_a_job_is_recorded(tmp_path):
    odd = tmp_path / "odd" / "Beagle"  # class folders with no train/ above them, never ingested
    odd.mkdir(parents=True)
    for photo in sorted((DOGS / "n02088364-beagle").glob("*.jpg"))[:3]:
        shutil.copy(photo, odd)
    ws = tmp_path / "ws"
    done = dogbreed_cli("train", "--dataset", str(tmp_path / "odd"), "--set", f"workspace={ws}", "--set", "model.weights=none")
    assert done.returncode == 1
    assert error_line(done.stderr) == (
        f"error: --dataset {tmp_path / 'odd'}: no dataset there (neither manifest.json nor a train/ folder); "
        f"ingest it first: dogbreed ingest {tmp_path / 'odd'}"
    )
    missing = dogbreed_cli(
        "train", "--dataset", str(tmp_path / "nope"), "--set", f"workspace={ws}", "--set", "model.weights=none"
    )
    assert error_line(missing.stderr).endswith("no such folder; run `dogbreed ingest SOURCE` first, or fix the path")
    # Before, a job was recorded, started, and left Failed (or "gone") for each.
    assert not (ws / "ledger.sqlite").exists() or Ledger(ws / "ledger.sqlite").list("training-job") == []
    assert not (ws / "jobs").exists()
