"""`dogbreed transform` on the local backend: a real model scoring real photos in-process, with
no server; the answers equal the endpoint's, bad files are rows, and a killed run resumes."""

from __future__ import annotations

import csv
import json
import shutil
import urllib.request
from pathlib import Path

import pytest

from dogbreed.backends import get_backend
from dogbreed.config import load_config
from dogbreed.errors import UsageError
from dogbreed.progress import NullReporter
from dogbreed.serving.batch import BatchImage
from dogbreed.serving.scores_file import read_rows
from dogbreed.workflows.transform import transform
from dogbreed.workspace import Workspace
from tests.serving.images import BEAGLE


def _setup(tmp_path: Path, *sets: str):
    config = load_config(sets=[f"workspace={tmp_path / 'ws'}", *sets])
    workspace = Workspace(Path(config.workspace))
    return config, get_backend(config, workspace, NullReporter()), workspace.ledger


def _photos(tmp_path: Path, predict_dir: Path, names: list[str]) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in names:
        shutil.copy(predict_dir / name, folder / name)
    return folder


def _run(tmp_path, sources, output, model, **kwargs):
    config, backend, ledger = _setup(tmp_path)
    return transform(config, backend, ledger, [str(s) for s in sources], output, model=str(model), **kwargs).outcome


def test_batch_answers_equal_the_endpoints_for_the_same_photos(tmp_path, model_dir, predict_dir, served):
    output = tmp_path / "scores.jsonl"
    outcome = _run(tmp_path, [predict_dir], output, model_dir, top_k=3)
    assert (outcome.state, outcome.scored, outcome.skipped, outcome.errors) == ("Completed", 11, 0, [])
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert [Path(row["image"]).name for row in rows] == sorted(p.name for p in predict_dir.iterdir())
    for row in rows:
        photo = Path(row["image"])
        request = urllib.request.Request(
            served.url + "/invocations",
            data=photo.read_bytes(),
            headers={"Content-Type": "image/jpeg", "Accept": "application/json; top_k=3"},
        )
        endpoint = json.loads(urllib.request.urlopen(request, timeout=60).read())["predictions"][0]
        assert [t["label"] for t in row["top"]] == [t["label"] for t in endpoint["top"]], photo.name
        assert [t["index"] for t in row["top"]] == [t["index"] for t in endpoint["top"]]
        for mine, theirs in zip(row["top"], endpoint["top"]):
            assert mine["probability"] == pytest.approx(theirs["probability"], abs=2e-6)
        assert row["dog_probability"] == pytest.approx(endpoint["dog_probability"], abs=2e-6)
        assert row["key"] == f"size={photo.stat().st_size};mtime_ns={photo.stat().st_mtime_ns}"
    cat = next(row for row in rows if Path(row["image"]).name == "cat_01.jpg")
    assert cat["is_dog"] is False  # the default deploy.dog_threshold, as predict decides
    beagle = next(row for row in rows if Path(row["image"]).name == "Beagle_01141.jpg")
    assert beagle["is_dog"] is True and beagle["top"][0]["label"].lower() == "beagle"


def test_a_bad_file_is_one_error_row_and_the_rest_are_scored(tmp_path, model_dir, predict_dir):
    folder = _photos(tmp_path, predict_dir, ["Beagle_01141.jpg", "Boxer_02426.jpg"])
    (folder / "broken.jpg").write_bytes(BEAGLE.read_bytes()[:2000])  # a truncated JPEG
    (folder / "empty.png").write_bytes(b"")
    output = tmp_path / "scores.csv"
    outcome = _run(tmp_path, [folder, tmp_path / "nowhere.jpg"], output, model_dir, top_k=2)
    errors = {Path(row["image"]).name: row["error"] for row in outcome.errors}
    assert set(errors) == {"broken.jpg", "empty.png", "nowhere.jpg"}
    assert errors["broken.jpg"].startswith("the image ")  # the handler's own words, as an endpoint's 400
    assert "empty" in errors["empty.png"] and errors["nowhere.jpg"] == "file not found"
    assert outcome.scored == 5
    with output.open(newline="") as handle:
        table = list(csv.DictReader(handle))
    assert list(table[0]) == [
        "image", "key", "label_1", "probability_1", "label_2", "probability_2", "dog_probability", "is_dog", "error",
    ]  # fmt: skip
    by_name = {Path(row["image"]).name: row for row in table}
    assert by_name["Beagle_01141.jpg"]["label_1"].lower() == "beagle" and not by_name["Beagle_01141.jpg"]["error"]
    assert float(by_name["Beagle_01141.jpg"]["probability_1"]) > float(by_name["Beagle_01141.jpg"]["probability_2"])
    assert by_name["broken.jpg"]["error"] and not by_name["broken.jpg"]["label_1"]


def test_a_killed_run_resumes_where_it_stopped(tmp_path, model_dir, predict_dir):
    """Interrupted at the 4th image (Ctrl-C while reading it): three rows are on disk; a
    half-written line from a kill is cut off; the rerun scores only the rest, and the file
    ends with every image once, as an uninterrupted run writes it."""
    names = sorted(p.name for p in predict_dir.iterdir())[:6]
    folder = _photos(tmp_path, predict_dir, names)
    config, backend, ledger = _setup(tmp_path)
    output = tmp_path / "scores.jsonl"
    from dogbreed.workflows.transform import build_request

    request = build_request(config, ledger, [str(folder)], output, model=str(model_dir))
    reads = {"count": 0}

    def interrupted(item: BatchImage) -> BatchImage:
        def read() -> bytes:
            reads["count"] += 1
            if reads["count"] == 4:
                raise KeyboardInterrupt
            return item.read()

        return BatchImage(item.image, item.key, read, item.path)

    from dataclasses import replace

    with pytest.raises(KeyboardInterrupt):
        backend.transform(replace(request, images=tuple(interrupted(i) for i in request.images)))
    assert len(output.read_text().splitlines()) == 3
    with output.open("a") as handle:
        handle.write('{"image": "' + str(folder / names[3]))  # what a kill mid-write leaves

    outcome = transform(config, backend, ledger, [str(folder)], output, model=str(model_dir)).outcome
    assert (outcome.skipped, outcome.scored, outcome.errors) == (3, 3, [])
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert [Path(row["image"]).name for row in rows] == names

    whole = tmp_path / "whole.jsonl"
    transform(config, backend, ledger, [str(folder)], whole, model=str(model_dir))
    assert rows == [json.loads(line) for line in whole.read_text().splitlines()]

    # Nothing left: a third run scores nothing; a changed photo is scored again, and its new
    # row is the one that counts.
    again = transform(config, backend, ledger, [str(folder)], output, model=str(model_dir)).outcome
    assert (again.skipped, again.scored) == (6, 0)
    shutil.copy(predict_dir / "cat_01.jpg", folder / names[0])
    changed = transform(config, backend, ledger, [str(folder)], output, model=str(model_dir)).outcome
    assert (changed.skipped, changed.scored) == (5, 1)
    latest = {Path(row["image"]).name: row for row in read_rows(output, "jsonl")}
    assert latest[names[0]]["is_dog"] is False  # now the cat
    assert len(latest) == 6


def test_another_top_k_on_a_csv_needs_restart(tmp_path, model_dir, predict_dir):
    folder = _photos(tmp_path, predict_dir, ["Beagle_01141.jpg"])
    output = tmp_path / "scores.csv"
    _run(tmp_path, [folder], output, model_dir, top_k=2)
    with pytest.raises(UsageError, match="pass --top-k 2"):
        _run(tmp_path, [folder], output, model_dir, top_k=3)
    outcome = _run(tmp_path, [folder], output, model_dir, top_k=3, restart=True)
    assert outcome.scored == 1 and "label_3" in output.read_text().splitlines()[0]


def test_an_s3_prefix_is_listed_and_read_through_the_store(tmp_path, model_dir, predict_dir, aws_env):
    import boto3

    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="photos")
    for name in ("Beagle_01141.jpg", "cat_01.jpg"):
        s3.put_object(Bucket="photos", Key=f"batch/{name}", Body=(predict_dir / name).read_bytes())
    s3.put_object(Bucket="photos", Key="batch/notes.txt", Body=b"not an image")
    s3.put_object(Bucket="photos", Key="batch-old/Boxer_02426.jpg", Body=(predict_dir / "Boxer_02426.jpg").read_bytes())
    output = tmp_path / "scores.jsonl"
    outcome = _run(tmp_path, ["s3://photos/batch"], output, model_dir)
    assert (outcome.scored, outcome.errors) == (2, [])
    rows = {row["image"]: row for row in read_rows(output, "jsonl")}
    assert set(rows) == {"s3://photos/batch/Beagle_01141.jpg", "s3://photos/batch/cat_01.jpg"}
    assert rows["s3://photos/batch/Beagle_01141.jpg"]["top"][0]["label"].lower() == "beagle"
    assert rows["s3://photos/batch/cat_01.jpg"]["key"] == f"size={(predict_dir / 'cat_01.jpg').stat().st_size}"


def test_the_cli_writes_rows_and_exits_1_after_them(tmp_path, model_tar, predict_dir):
    from tests.conftest import dogbreed_cli

    folder = _photos(tmp_path, predict_dir, ["Beagle_01141.jpg"])
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff not really")
    run = dogbreed_cli(
        "transform", str(folder), "-o", "out.jsonl", "--model", str(model_tar), "--json", "--set", f"workspace={tmp_path / 'ws'}",
        cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 1, run.stderr
    answer = json.loads(run.stdout)
    assert answer["backend"] == "local" and answer["state"] == "Completed" and answer["scored"] == 2
    assert [Path(row["image"]).name for row in answer["errors"]] == ["broken.jpg"]
    assert answer["output"] == "out.jsonl" and len((tmp_path / "out.jsonl").read_text().splitlines()) == 2
    assert run.stderr.strip().splitlines()[-1] == 'error: 1 of 2 images could not be scored; see under "errors" in the JSON'
    plan = dogbreed_cli("transform", str(folder), "--dry-run", "--json", "--model", str(model_tar), cwd=tmp_path)
    assert plan.returncode == 0 and json.loads(plan.stdout)["plan"]["images"] == 2


def test_the_cli_killed_with_sigkill_resumes_with_the_same_command(tmp_path, model_tar, predict_dir):
    """kill -9 mid-run (no handler runs, the last line may be half-written): the same command
    again scores only what is missing, and every photo ends up in the file exactly once."""
    import os
    import signal
    import subprocess
    import sys
    import time

    folder = tmp_path / "photos"
    folder.mkdir()
    sources = sorted(predict_dir.iterdir())
    for copy in range(2):  # 22 photos: a run long enough to be killed in the middle
        for photo in sources:
            shutil.copy(photo, folder / f"{copy}-{photo.name}")
    output = tmp_path / "scores.jsonl"
    argv = [str(Path(sys.executable).parent / "dogbreed"), "transform", str(folder), "-o", str(output), "--model", str(model_tar)]
    argv += ["--json", "--set", f"workspace={tmp_path / 'ws'}"]
    first = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300  # a guard against a hang, not a timing assertion
        while (not output.exists() or output.read_text().count("\n") < 3) and first.poll() is None:
            assert time.monotonic() < deadline, "no rows were written"
            time.sleep(0.01)
        os.kill(first.pid, signal.SIGKILL)
    finally:
        first.wait()
    kept = output.read_text().count("\n")
    if first.returncode != -signal.SIGKILL or kept >= 22:
        pytest.skip("the run ended before it could be killed")

    second = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=600)
    assert second.returncode == 0, second.stderr
    answer = json.loads(second.stdout)
    assert answer["skipped"] == kept and answer["scored"] == 22 - kept
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert sorted(Path(row["image"]).name for row in rows) == sorted(p.name for p in folder.iterdir())
    assert all("top" in row for row in rows)


def test_a_second_run_on_the_same_output_is_refused_while_the_first_writes(tmp_path, model_dir, predict_dir):
    from dogbreed.errors import BusyError
    from dogbreed.serving.scores_file import writing

    folder = _photos(tmp_path, predict_dir, ["Beagle_01141.jpg"])
    output = tmp_path / "scores.csv"
    _run(tmp_path, [folder], output, model_dir, top_k=2)
    before = output.read_bytes()
    with writing(output):  # what a running transform holds
        with pytest.raises(BusyError, match=rf"^{output} is being written by another transform; wait for it"):
            _run(tmp_path, [folder], output, model_dir, top_k=2, restart=True)
    assert output.read_bytes() == before  # not even --restart touched it
    # Without the lock both read the file before either wrote: every image got two rows.
    assert _run(tmp_path, [folder], output, model_dir, top_k=2).skipped == 1


def test_a_run_that_writes_nothing_leaves_no_file_it_created(tmp_path):
    from dogbreed.serving.scores_file import writing

    output = tmp_path / "out" / "scores.jsonl"
    with pytest.raises(RuntimeError):
        with writing(output):
            raise RuntimeError("the model would not load")
    assert not output.exists()
    output.write_text("")  # the user's own (empty) file stays
    with writing(output):
        pass
    assert output.exists()
