"""The ledger: latest-of-kind lookups, merges, and survival of kills and concurrent writers."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest

from dogbreed.errors import DogbreedError
from dogbreed.ledger import Ledger, LedgerError, now


def test_record_get_latest_and_update(tmp_path):
    ledger = Ledger(tmp_path / "ledger.sqlite")
    ledger.record("dataset", "dogs", "local", uri="/data/dogs", meta={"manifest_sha256": "abc"})
    ledger.record("dataset", "more", "local", uri="/data/more")
    assert ledger.latest("dataset").name == "more"
    ledger.record("dataset", "dogs", "local", uri="/data/dogs2")  # re-recording makes it the latest again
    latest = ledger.latest("dataset")
    assert latest.name == "dogs" and latest.uri == "/data/dogs2"
    expires = now() + timedelta(hours=2)
    updated = ledger.update("dataset", "dogs", "local", state="deleted", expires_at=expires, meta={"extra": 1})
    assert updated.state == "deleted" and updated.expires_at == expires
    assert updated.meta == {"extra": 1}  # meta of the re-record replaced the first one, then merged
    assert not updated.live
    assert ledger.latest("dataset", states=["created"]).name == "more"
    assert ledger.get("dataset", "nope") is None
    assert [r.name for r in ledger.list("dataset")] == ["more", "dogs"]


def test_a_name_recorded_again_keeps_its_age_while_it_lives_and_starts_anew_after_deletion(tmp_path, monkeypatch):
    import dogbreed.ledger as ledger_module

    clock = [now() - timedelta(hours=2)]
    monkeypatch.setattr(ledger_module, "now", lambda: clock[0])
    ledger = Ledger(tmp_path / "ledger.sqlite")
    born = ledger.record("endpoint", "demo", "local", state="creating").created_at
    clock[0] += timedelta(minutes=5)
    again = ledger.record("endpoint", "demo", "local", state="in-service")  # the same live endpoint
    assert again.created_at == born and again.updated_at == clock[0]
    clock[0] += timedelta(minutes=5)
    ledger.update("endpoint", "demo", "local", state="deleted")
    clock[0] += timedelta(hours=1)
    redeployed = ledger.record("endpoint", "demo", "local", state="creating")  # the name, a new endpoint
    assert redeployed.created_at == clock[0]


def test_same_name_on_two_backends_are_two_resources(tmp_path):
    ledger = Ledger(tmp_path / "l.sqlite")
    ledger.record("endpoint", "dogbreed", "local")
    ledger.record("endpoint", "dogbreed", "sagemaker")
    assert len(ledger.list("endpoint")) == 2
    assert ledger.latest("endpoint", backend="local").backend == "local"


def _writer(path, worker, count):
    ledger = Ledger(path)
    for index in range(count):
        ledger.record("trial", f"w{worker}-{index}", "local", meta={"i": index})


def test_two_processes_write_at_once_and_nothing_is_lost(tmp_path):
    path = tmp_path / "l.sqlite"
    Ledger(path)
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_writer, args=(path, worker, 50)) for worker in range(2)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(60)
        assert process.exitcode == 0
    assert len(Ledger(path).list("trial")) == 100


KILL_LOOP = """
import sys
from dogbreed.ledger import Ledger
ledger = Ledger(sys.argv[1])
print("ready", flush=True)
i = 0
while True:
    ledger.record("trial", f"t{i}", "local", meta={"payload": "x" * 2000, "i": i})
    i += 1
"""


def test_a_kill_mid_write_leaves_a_consistent_ledger(tmp_path):
    path = tmp_path / "l.sqlite"
    proc = subprocess.Popen([sys.executable, "-c", KILL_LOOP, str(path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    # Let it write for a while, then kill it without warning, in the middle of whatever it does.
    deadline = time.monotonic() + 30
    while len(Ledger(path).list("trial")) < 20 and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    ledger = Ledger(path)
    rows = ledger.list("trial")
    assert len(rows) >= 20
    # Every row that exists is whole, and the store takes new writes.
    assert all(row.meta["payload"] == "x" * 2000 for row in rows)
    ledger.record("trial", "after", "local")
    assert ledger.latest("trial").name == "after"


def _damage_file(path: Path, how: str) -> None:
    if how == "garbage":
        path.write_bytes(bytes(range(256)) * 20)
    elif how == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif how == "json":
        path.write_text('{"jobs": [1, 2, 3]}')
    else:
        db = sqlite3.connect(path)
        if how == "other table":
            db.executescript("DROP TABLE resources; CREATE TABLE resources (x TEXT); INSERT INTO resources VALUES ('a');")
        elif how == "meta not json":
            db.execute("UPDATE resources SET meta='{not json'")
        elif how == "meta a list":
            db.execute("UPDATE resources SET meta='[1, 2]'")
        elif how == "bad date":
            db.execute("UPDATE resources SET created_at='yesterday'")
        db.commit()
        db.close()


@pytest.mark.parametrize("how", ["garbage", "truncated", "json", "other table", "meta not json", "meta a list", "bad date"])
def test_a_damaged_ledger_is_one_line_naming_the_file_and_the_fix_and_is_left_as_it_was(tmp_path, how):
    path = tmp_path / "ledger.sqlite"
    ledger = Ledger(path)
    for index in range(40):  # enough pages that a cut lands inside the table
        ledger.record("training-job", f"job-{index}", "local", uri="/x", meta={"pad": "p" * 200})
    _damage_file(path, how)
    before = path.read_bytes()
    with pytest.raises(LedgerError) as caught:
        Ledger(path).list("training-job")
    message = str(caught.value)
    assert "\n" not in message and str(path) in message and "damaged" in message and "mv " in message
    assert isinstance(caught.value, DogbreedError)  # the CLI's one line, exit 1
    assert path.read_bytes() == before  # nothing rewritten: the user decides what to keep


def test_a_ledger_locked_too_long_says_so_and_is_not_called_damaged(tmp_path):
    ledger = Ledger(tmp_path / "ledger.sqlite")
    ledger.record("dataset", "d", "local")
    db = sqlite3.connect(tmp_path / "ledger.sqlite")
    db.execute("BEGIN EXCLUSIVE")
    try:
        slow = Ledger.__new__(Ledger)
        slow.path = tmp_path / "ledger.sqlite"
        with pytest.raises(LedgerError, match="locked") as caught:
            with slow._connect() as conn:
                conn.execute("PRAGMA busy_timeout=50")
                conn.execute("BEGIN IMMEDIATE")
        assert "damaged" not in str(caught.value)
    finally:
        db.rollback()
        db.close()


def test_a_ledger_that_cannot_be_opened_says_so_and_is_not_called_damaged(tmp_path):
    (tmp_path / "ledger.sqlite").mkdir()  # what a read-only or full workspace also reads as
    with pytest.raises(LedgerError, match="cannot use the ledger .*check that the workspace is writable") as caught:
        Ledger(tmp_path / "ledger.sqlite")
    assert "damaged" not in str(caught.value)
