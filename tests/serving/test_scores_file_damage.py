"""A scores file that `transform` reads back before it appends: a row a kill cut short is
dropped with a note and scored again; anything else that is no row of ours (garbage, a hand
edit, bytes that are not text) is one line naming the line, and the file is left as it was.
An --output that cannot be a file (a folder, a link into nowhere) is one line too."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from dogbreed.errors import UsageError
from dogbreed.serving.scores_file import ScoresFile, csv_header, read_rows
from tests.conftest import dogbreed_cli

ROW = {
    "image": "photos/a.jpg",
    "key": "size=1;mtime_ns=2",
    "top": [{"label": "Beagle", "index": 3, "probability": 0.9}],
    "dog_probability": 0.99,
    "is_dog": True,
}
CSV_ROW = "photos/a.jpg,size=1;mtime_ns=2,Beagle,0.9,0.99,true,\n"
CSV_HEAD = ",".join(csv_header(1)) + "\n"


def _jsonl(*rows: dict) -> str:
    return "".join(json.dumps(row) + "\n" for row in rows)


def _one_row_file(suffix: str) -> str:
    """A whole scores file of one row, as transform writes it in `suffix`'s format."""
    return (CSV_HEAD + CSV_ROW) if suffix == "csv" else _jsonl(ROW)


@pytest.mark.parametrize(
    ("suffix", "text", "line", "why"),
    [
        ("csv", CSV_HEAD + CSV_ROW + "garbage,xx\n" + CSV_ROW, 3, "2 cells where the header has 7"),
        ("csv", CSV_HEAD + CSV_ROW + "garbage\n" + CSV_ROW, 3, "1 cells where the header has 7"),
        ("csv", CSV_HEAD + "photos/b.jpg,k,Beagle,notanumber,0.9,true,\n", 2, "cells that are not a model's answer"),
        ("csv", CSV_HEAD + "photos/b.jpg,k,Beagle,nan,0.9,true,\n", 2, "labels or probabilities"),
        ("jsonl", _jsonl(ROW) + "garbage\n" + _jsonl(ROW), 2, "not JSON"),
        ("jsonl", _jsonl(ROW, {**ROW, "key": 3}), 2, "a key that is not text"),
        ("jsonl", _jsonl({**ROW, "top": 5}), 1, "labels or probabilities"),
        ("jsonl", _jsonl({**ROW, "is_dog": "yes"}), 1, "an is_dog"),
        ("jsonl", _jsonl({"image": ["a"], "key": "k"}), 1, "no image named"),
    ],
)
def test_a_row_that_is_not_ours_names_its_line_and_leaves_the_file(tmp_path, suffix, text, line, why):
    """A garbage line in the middle, or a hand-edited row, used to be read as an image named
    `garbage` (CSV, silently) or to fail as `unexpected ValueError` (a cell that is no number)."""
    path = tmp_path / f"scores.{suffix}"
    path.write_text(text)
    with pytest.raises(UsageError, match=rf"^{path}:{line}: {why}.*--restart"):
        ScoresFile(path, suffix, 1)
    assert path.read_text() == text


@pytest.mark.parametrize("suffix", ["csv", "jsonl"])
def test_bytes_that_are_not_text_are_one_line(tmp_path, suffix):
    """Was `unexpected UnicodeDecodeError`."""
    path = tmp_path / f"scores.{suffix}"
    good = _one_row_file(suffix)
    data = good.encode() + b"\x00\xff\xfe binary\n" + good.encode().splitlines(keepends=True)[-1]
    path.write_bytes(data)
    with pytest.raises(UsageError, match=rf"^{path}: bytes that are not UTF-8 text.*--restart"):
        ScoresFile(path, suffix, 1)
    assert path.read_bytes() == data


@pytest.mark.parametrize("suffix", ["csv", "jsonl"])
def test_a_row_cut_short_is_dropped_with_a_note(tmp_path, suffix):
    whole = _one_row_file(suffix)
    path = tmp_path / f"scores.{suffix}"
    path.write_text(whole + whole.splitlines(keepends=True)[-1][:-9])
    notes: list[str] = []
    assert [row["image"] for row in read_rows(path, suffix, notes)] == ["photos/a.jpg"]
    assert path.read_text() == whole
    assert notes == [f"{path}: its last row was cut short (a killed run?); dropped it, and that image is scored again"]


def test_a_quoted_newline_is_inside_a_row_not_the_end_of_one(tmp_path):
    """A file name may hold a newline; CSV quotes it, so a row ends at a newline outside quotes."""
    path = tmp_path / "scores.csv"
    odd = '"photos/a\nb.jpg",k,Beagle,0.5,0.9,true,\n'
    path.write_text(CSV_HEAD + odd + odd[:5])
    notes: list[str] = []
    assert [row["image"] for row in read_rows(path, "csv", notes)] == ["photos/a\nb.jpg"]
    assert path.read_text() == CSV_HEAD + odd and len(notes) == 1


def test_a_stray_quote_lines_before_the_end_is_refused_not_cut_off(tmp_path):
    """Read as a row cut short, it would cut off every row after it."""
    path = tmp_path / "scores.csv"
    text = CSV_HEAD + CSV_ROW + 'photos/"b.jpg,k,Beagle,0.5,0.9,true,\n' + CSV_ROW * 3
    path.write_text(text)
    with pytest.raises(UsageError, match=rf"^{path}:3: a quote that is never closed"):
        read_rows(path, "csv", [])
    assert path.read_text() == text


def test_a_header_cut_short_is_written_again(tmp_path):
    path = tmp_path / "scores.csv"
    path.write_text(CSV_HEAD[:12])
    with ScoresFile(path, "csv", 1) as scores:
        scores.write(ROW)
    assert path.read_text() == CSV_HEAD + CSV_ROW


def test_json_lines_in_a_csv_name_the_format(tmp_path):
    path = tmp_path / "scores.csv"
    path.write_text(_jsonl(ROW))
    with pytest.raises(UsageError, match="it holds JSON Lines: pass --format jsonl"):
        ScoresFile(path, "csv", 1)


def _cli(tmp_path: Path, model_tar: Path, folder: Path, *args: str):
    return dogbreed_cli(
        "transform", str(folder), "--model", str(model_tar), "--top-k", "1", "--set", f"workspace={tmp_path / 'ws'}", *args,
        cwd=tmp_path,
    )  # fmt: skip


def test_the_cli_resumes_a_cut_row_with_a_note_and_refuses_garbage_in_one_line(tmp_path, model_tar, predict_dir):
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("Beagle_01141.jpg", "cat_01.jpg"):
        shutil.copy(predict_dir / name, folder / name)
    first = _cli(tmp_path, model_tar, folder, "-o", "s.csv")
    assert first.returncode == 0, first.stderr
    output = tmp_path / "s.csv"
    whole = output.read_text()
    output.write_text(whole[:-15])  # a kill in the middle of the last row

    again = _cli(tmp_path, model_tar, folder, "-o", "s.csv")
    assert again.returncode == 0, again.stderr
    assert "its last row was cut short (a killed run?); dropped it" in again.stderr
    assert "1 of 2 images already scored; resuming" in again.stderr
    rows = output.read_text().splitlines()
    assert len(rows) == 3 and sorted(rows[1:]) == sorted(whole.splitlines()[1:])

    lines = output.read_text().splitlines(keepends=True)
    output.write_text(lines[0] + "garbage,xx\n" + "".join(lines[1:]))
    before = output.read_bytes()
    damaged = _cli(tmp_path, model_tar, folder, "-o", "s.csv")
    assert damaged.returncode == 2
    assert damaged.stderr.strip().splitlines() == [
        "error: s.csv:2: 2 cells where the header has 7, not a row dogbreed transform writes; "
        "--restart to score every image again into it, or choose another --output"
    ]
    assert output.read_bytes() == before


def test_an_output_that_cannot_be_a_file_is_one_line(tmp_path, model_tar, predict_dir):
    """A folder was `unexpected IsADirectoryError`; a link into a missing folder `unexpected
    FileNotFoundError`."""
    (tmp_path / "out.csv").mkdir()
    folder = tmp_path / "out.csv"
    run = _cli(tmp_path, model_tar, predict_dir / "Beagle_01141.jpg", "-o", "out.csv")
    assert run.returncode == 2
    assert (
        run.stderr.strip()
        == f"error: --output out.csv is a folder; give a file in it, e.g. --output {Path('out.csv', 'scores.csv')}"
    )
    assert list(folder.iterdir()) == []
    (tmp_path / "link.csv").symlink_to("nowhere/x.csv")
    run = _cli(tmp_path, model_tar, predict_dir / "Beagle_01141.jpg", "-o", "link.csv")
    assert run.returncode == 1
    assert run.stderr.strip() == (
        "error: cannot write the scores file link.csv (a link to nowhere/x.csv): No such file or directory; choose another --output"
    )
