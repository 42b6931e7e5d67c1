"""Folders that name one breed (#15 item 4): Beagle/ and beagle/, or Bull dog/, Bull  dog/,
bull_dog/ and n02000000-Bull_dog/ must not become several classes with one label. Each
extra folder is a problem naming the folder kept; --strict fails on it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from dogbreed.data.images import ImageCheck
from dogbreed.data.labels import colliding_labels
from dogbreed.data.layout import detect_layout
from dogbreed.data.plan import plan_dataset
from tests.conftest import dogbreed_cli
from tests.data.conftest import photos

BULL_DOGS = ["Bull dog", "Bull  dog", "bull_dog", "n02000000-Bull_dog", "Bull-Dog"]


def _ok(digest: str) -> ImageCheck:
    return ImageCheck(problem=None, size=10, sha256=digest, stored=Path("/x"), stored_size=10, stored_sha256=digest)


def test_colliding_labels_are_grouped_by_what_a_person_reads():
    groups = colliding_labels(["Beagle", "beagle", "Boxer", *BULL_DOGS, "Bulldog"])
    assert groups == {"Beagle": ["Beagle", "beagle"], "Bull dog": sorted(BULL_DOGS)}


@pytest.mark.parametrize("folders", [["Beagle", "beagle"], BULL_DOGS])
def test_the_plan_keeps_one_folder_per_label_and_names_the_others(folders):
    files = {f"{folder}/{i}.jpg": _ok(f"{folder}{i}") for folder in [*folders, "Boxer"] for i in range(10)}
    plan = plan_dataset(detect_layout(list(files)), files, 0.1, 0.1, seed=0, where="src")
    kept, *others = sorted(folders)
    assert set(plan.labels) == {kept, "Boxer"}
    assert sorted(plan.labels.values()) == sorted({plan.labels[kept], "Boxer"})
    collided = {p["file"]: p["problem"] for p in plan.problems if "same breed label" in p["problem"]}
    assert set(collided) == {f"{folder}/" for folder in others}
    assert all(f"folder {kept}/ (kept)" in problem for problem in collided.values())
    assert {f.folder for f in plan.files} == {kept, "Boxer"}


def _source(tmp_path: Path, folders: list[str]) -> Path:
    source = tmp_path / "dogs"
    sample = sorted(p.name for p in photos()[0].parents[1].iterdir())
    for folder, original in zip([*folders, "Boxer"], sample):
        shutil.copytree(photos()[0].parents[1] / original, source / folder)
    return source


def test_ingest_reports_the_collision_and_strict_fails_on_it(tmp_path):
    source = _source(tmp_path, ["Beagle", "beagle"])
    result = dogbreed_cli("ingest", str(source), "--json", "--dest", str(tmp_path / "ds"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["num_classes"] == 2
    assert "Beagle/ (kept)" in next(p["problem"] for p in answer["problems"] if p["file"] == "beagle/")

    strict = dogbreed_cli("ingest", str(source), "--json", "--strict", "--dest", str(tmp_path / "strict"), cwd=tmp_path)
    assert strict.returncode == 1 and strict.stdout == ""
    (line,) = [line for line in strict.stderr.splitlines() if line.startswith("error:")]  # progress lines aside
    assert "--strict" in line and "beagle/" in line and "Beagle/" in line
    assert not (tmp_path / "strict").exists()
