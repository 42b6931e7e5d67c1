"""`dogbreed ingest` end to end on the real vendored photos, to a local folder."""

from __future__ import annotations

import json
import os
import shutil
import struct
import zipfile
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from dogbreed.cli.app import app, run
from dogbreed.config import load_config
from dogbreed.data.manifest import parse_manifest
from dogbreed.errors import DogbreedError
from dogbreed.ledger import Ledger
from dogbreed.workflows.ingest import ingest
from dogbreed.workspace import Workspace
from tests.conftest import dogbreed_cli, error_line
from tests.data.conftest import DOGS, image_bytes, make_dogimages, photos, sha256, zip_folder

pytestmark = pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")

LABELS = {
    "n02088238-basset": "Basset",
    "n02088364-beagle": "Beagle",
    "n02096585-Boston_bull": "Boston bull",
    "n02099601-golden_retriever": "Golden retriever",
    "n02106030-collie": "Collie",
    "n02106662-German_shepherd": "German shepherd",
    "n02108089-boxer": "Boxer",
    "n02109525-Saint_Bernard": "Saint Bernard",
    "n02110806-basenji": "Basenji",
    "n02111500-Great_Pyrenees": "Great Pyrenees",
}


def _answer(stdout: str) -> dict:
    return json.loads(stdout)  # fails unless stdout is exactly one JSON document


def _check_stored_dataset(answer: dict, source_files: dict[str, str] | None = None) -> dict:
    """The folder at dataset_uri holds exactly the manifest's files, with their sizes and hashes."""
    root = Path(answer["dataset_uri"])
    manifest = parse_manifest((root / "manifest.json").read_bytes())
    assert manifest["manifest_sha256"] == answer["manifest_sha256"]
    assert [f["path"] for f in manifest["files"]] == sorted(f["path"] for f in manifest["files"])
    stored = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()} - {"manifest.json"}
    assert stored == {f["path"] for f in manifest["files"]}
    for entry in manifest["files"]:
        data = (root / entry["path"]).read_bytes()
        assert len(data) == entry["size"] and sha256(data) == entry["sha256"]
        assert entry["path"].split("/")[0] == entry["split"]
        assert manifest["classes"][entry["index"]]["label"] == entry["label"]
    counts = {s: sum(f["split"] == s for f in manifest["files"]) for s in ("train", "valid", "test")}
    assert counts == answer["splits"]
    return manifest


def test_cli_subprocess_ingests_the_vendored_photos_and_records_the_dataset(tmp_path):
    result = dogbreed_cli("ingest", str(DOGS), "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    answer = _answer(result.stdout)
    assert answer["dataset_uri"] == str((tmp_path / ".dogbreed" / "data" / "dogs").resolve())
    assert answer["name"] == "dogs" and answer["layout"] == "stanford"
    assert answer["num_classes"] == 10 and answer["problems"] == []
    assert answer["splits"] == {"train": 80, "valid": 10, "test": 10}
    assert (answer["uploaded"], answer["skipped"]) == (100, 0)
    manifest = _check_stored_dataset(answer)
    assert {c["folder"]: c["label"] for c in manifest["classes"]} == LABELS
    assert [c["index"] for c in manifest["classes"]] == list(range(10))
    assert manifest["source"] == str(DOGS) and manifest["layout"] == "stanford"
    # Stratified: every breed has 8 / 1 / 1.
    for folder in LABELS:
        splits = sorted(f["split"] for f in manifest["files"] if f["path"].split("/")[1] == folder)
        assert splits == ["test"] + ["train"] * 8 + ["valid"]
    # The bytes stored are the originals.
    originals = {sha256(p.read_bytes()) for p in photos()}
    assert {f["sha256"] for f in manifest["files"]} == originals

    dataset = Ledger(tmp_path / ".dogbreed" / "ledger.sqlite").latest("dataset")
    assert (dataset.name, dataset.backend, dataset.uri, dataset.state) == ("dogs", "local", answer["dataset_uri"], "created")
    assert dataset.meta == {
        "manifest_sha256": answer["manifest_sha256"],
        "num_classes": 10,
        "splits": answer["splits"],
        "source": str(DOGS),
        "layout": "stanford",
    }

    again = dogbreed_cli("ingest", str(DOGS), "--json", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    second = _answer(again.stdout)
    assert (second["uploaded"], second["skipped"]) == (0, 100)
    assert second["manifest_sha256"] == answer["manifest_sha256"]


def test_cli_runner_with_dest_and_people_output(tmp_path):
    dest = tmp_path / "datasets" / "dogs"
    args = ["ingest", str(DOGS), "--dest", str(dest), "--set", f"workspace={tmp_path / 'ws'}"]
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    answer = _answer(result.stdout)
    assert answer["dataset_uri"] == str(dest) and answer["uploaded"] == 100
    _check_stored_dataset(answer)
    people = CliRunner().invoke(app, args)
    assert people.exit_code == 0
    assert "uploaded / skipped" in people.stdout and "0 / 100" in people.stdout


def test_same_photos_give_the_same_identity_wherever_they_come_from(tmp_path):
    config = load_config(overrides={"workspace": str(tmp_path / "ws")})
    workspace = Workspace(tmp_path / "ws")
    copy = shutil.copytree(DOGS, tmp_path / "elsewhere" / "dogs")
    one = ingest(config, workspace, source=str(DOGS), dest=str(tmp_path / "a"))
    two = ingest(config, workspace, source=os.path.relpath(copy), dest=str(tmp_path / "b"))
    assert one.manifest_sha256 == two.manifest_sha256
    other_seed = load_config(sets=["data.seed=7"], overrides={"workspace": str(tmp_path / "ws")})
    three = ingest(other_seed, workspace, source=str(DOGS), dest=str(tmp_path / "c"))
    assert three.manifest_sha256 != one.manifest_sha256 and three.splits == one.splits


def test_a_changed_photo_is_the_only_file_stored_again(tmp_path):
    source = shutil.copytree(DOGS, tmp_path / "dogs")
    config = load_config(overrides={"workspace": str(tmp_path / "ws")})
    workspace = Workspace(tmp_path / "ws")
    first = ingest(config, workspace, source=str(source), dest=str(tmp_path / "ds"))
    beagle = sorted((source / "n02088364-beagle").iterdir())[0]
    with Image.open(beagle) as image:
        image.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(beagle, quality=90)
    second = ingest(config, workspace, source=str(source), dest=str(tmp_path / "ds"))
    assert (second.uploaded, second.skipped) == (1, 99)
    assert second.manifest_sha256 != first.manifest_sha256
    _check_stored_dataset(second.to_json())


def _odd_source(root: Path) -> Path:
    """Three real breeds x 5 photos, plus every kind of problem, plus odd but good images."""
    for folder in ("n02088364-beagle", "n02108089-boxer", "n02106030-collie"):
        (root / folder).mkdir(parents=True)
        for photo in photos(folder)[:5]:
            shutil.copyfile(photo, root / folder / photo.name)
    beagle, boxer = root / "n02088364-beagle", root / "n02108089-boxer"
    good = photos("n02088364-beagle")[0].read_bytes()
    (beagle / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (beagle / "random.jpg").write_bytes(os.urandom(2048))
    (beagle / "empty.jpg").write_bytes(b"")
    (beagle / "tiny.png").write_bytes(image_bytes(size=(20, 20)))
    (beagle / "gray.png").write_bytes(image_bytes("L"))
    (beagle / "cmyk.jpg").write_bytes(image_bytes("CMYK", fmt="JPEG"))
    (boxer / "palette.png").write_bytes(image_bytes("P"))
    (boxer / "rgba.png").write_bytes(image_bytes("RGBA"))
    (boxer / "copied-beagle.jpg").write_bytes(good)  # the same photo under two breeds
    (root / "n02110806-basenji").mkdir()
    (root / "n02110806-basenji" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    (root / "README.txt").write_text("photos by ...")
    (root / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    return root


def test_problems_are_reported_per_file_and_excluded(tmp_path):
    source = _odd_source(tmp_path / "odd")
    result = dogbreed_cli("ingest", str(source), "--json", "--dest", str(tmp_path / "ds"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    answer = _answer(result.stdout)
    problems = {p["file"]: p["problem"] for p in answer["problems"]}
    expected = {
        "n02088364-beagle/truncated.jpg": "truncated",
        "n02088364-beagle/random.jpg": "not an image",
        "n02088364-beagle/empty.jpg": "empty file",
        "n02088364-beagle/tiny.png": "too small",
        "n02110806-basenji/broken.jpg": "",
        "n02110806-basenji/": "no usable images",
        "README.txt": "outside any class folder",
    }
    for file, words in expected.items():
        assert words in problems.pop(file), file
    # The copied photo is kept once; which copy goes is decided by path, deterministically.
    ((duplicate, why),) = problems.items()
    assert duplicate in ("n02108089-boxer/copied-beagle.jpg", f"n02088364-beagle/{photos('n02088364-beagle')[0].name}")
    assert "same sha256" in why or "same image" in why

    manifest = _check_stored_dataset(answer)
    assert answer["num_classes"] == 3 and answer["ignored"] == 1
    names = {f["path"].rsplit("/", 1)[1] for f in manifest["files"]}
    assert {"gray.png", "cmyk.jpg", "palette.png", "rgba.png"} <= names
    assert not names & {"truncated.jpg", "random.jpg", "empty.jpg", "tiny.png", "broken.jpg", "README.txt", ".DS_Store"}
    assert sum(answer["splits"].values()) == 15 + 4 + 1 - 1  # photos + odd good ones + copy - duplicate

    strict = dogbreed_cli("ingest", str(source), "--json", "--strict", "--dest", str(tmp_path / "strict"), cwd=tmp_path)
    assert strict.returncode == 1 and strict.stdout == ""
    line = error_line(strict.stderr)
    assert "--strict" in line and "8 problem(s)" in line and "README.txt" in line
    assert not (tmp_path / "strict").exists()


@pytest.fixture
def flat_folder(tmp_path):
    flat = tmp_path / "flat"
    flat.mkdir()
    for photo in photos()[:3]:
        shutil.copyfile(photo, flat / photo.name)
    return flat


def test_wrong_layout_and_missing_source_exit_1_and_2_with_one_line(tmp_path, flat_folder):
    for args, code, words in [([str(flat_folder)], 1, "no class folders"), ([str(tmp_path / "nope")], 2, "no such file")]:
        result = dogbreed_cli("ingest", *args, "--json", cwd=tmp_path)
        assert result.returncode == code and result.stdout == "", (args, result.stderr)
        assert words in error_line(result.stderr), (args, result.stderr)


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (["{flat}"], 1, "3 files at the top level and no class folders"),
        (["{dogs}/n02088364-beagle"], 1, "no class folders"),
        (["{photo}"], 2, "not a folder or a zip/tar archive"),
        (["ftp://example.com/x.zip"], 2, "unsupported source"),
        (["{dogs}", "--dest", "{dogs}/inside"], 2, "overlaps the source folder"),
        (["{dogs}", "--dest", "gs://bucket/x"], 2, "unsupported destination"),
    ],
)
def test_wrong_sources_are_one_line_errors(tmp_path, flat_folder, capsys, monkeypatch, args, code, words):
    monkeypatch.chdir(tmp_path)
    argv = [a.format(flat=flat_folder, dogs=DOGS, photo=photos()[0]) for a in args]
    assert run(["ingest", *argv, "--json"]) == code
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert out == "" and len(lines) == 1 and words in lines[0], lines
    assert not (DOGS / "inside").exists()


def test_wrapped_dogimages_zip_keeps_its_splits(tmp_path):
    archive = zip_folder(make_dogimages(tmp_path / "build"), tmp_path / "dogImages.zip")
    config = load_config(overrides={"workspace": str(tmp_path / "ws")})
    result = ingest(config, Workspace(tmp_path / "ws"), source=str(archive))
    assert result.name == "dogImages" and result.layout == "dogimages"
    assert result.splits == {"train": 24, "valid": 8, "test": 8} and result.problems == []
    manifest = _check_stored_dataset(result.to_json())
    assert [c["folder"] for c in manifest["classes"]] == ["001.Basset", "002.Beagle", "003.Boston_bull", "004.Golden_retriever"]
    assert [c["label"] for c in manifest["classes"]] == ["Basset", "Beagle", "Boston bull", "Golden retriever"]
    assert "train/002.Beagle/beagle_00000.jpg" in {f["path"] for f in manifest["files"]}
    assert Path(result.dataset_uri) == (tmp_path / "ws" / "data" / "dogImages").resolve()


def test_url_source_is_downloaded_once_and_checked(tmp_path, file_server):
    archive = zip_folder(make_dogimages(tmp_path / "build", breeds=2), tmp_path / "dogImages.zip")
    file_server.files["/dog-project/dogImages.zip"] = archive.read_bytes()
    file_server.drops["/dog-project/dogImages.zip"] = [100_000]  # the first attempt is cut off
    url = file_server.url + "/dog-project/dogImages.zip"
    sets = [f"data.sha256={sha256(archive.read_bytes())}"]
    config = load_config(sets=sets, overrides={"workspace": str(tmp_path / "ws"), "data.source": url})
    result = ingest(config, Workspace(tmp_path / "ws"))
    assert result.name == "dogImages" and result.source == url and result.num_classes == 2
    assert file_server.requests[1]["range"] == "bytes=100000-"
    again = ingest(config, Workspace(tmp_path / "ws"))
    assert len(file_server.requests) == 2 and again.uploaded == 0
    wrong = load_config(sets=["data.sha256=" + "ab" * 32], overrides={"workspace": str(tmp_path / "w2"), "data.source": url})
    with pytest.raises(Exception, match="does not match data.sha256"):
        ingest(wrong, Workspace(tmp_path / "w2"))


def test_resize_stores_smaller_copies_and_never_touches_originals(tmp_path):
    before = {p: sha256(p.read_bytes()) for p in photos()}
    config = load_config(sets=["data.resize=64"], overrides={"workspace": str(tmp_path / "ws")})
    result = ingest(config, Workspace(tmp_path / "ws"), source=str(DOGS))
    manifest = _check_stored_dataset(result.to_json())
    root = Path(result.dataset_uri)
    for entry in manifest["files"][:10]:
        with Image.open(root / entry["path"]) as image:
            assert min(image.size) == 64
    assert {p: sha256(p.read_bytes()) for p in photos()} == before
    assert result.bytes_uploaded < sum(p.stat().st_size for p in photos()) / 3
    again = ingest(config, Workspace(tmp_path / "ws"), source=str(DOGS))
    assert again.uploaded == 0 and again.manifest_sha256 == result.manifest_sha256


def test_files_the_new_dataset_drops_are_reported_then_pruned_and_nothing_else_is_touched(tmp_path, capsys):
    source = shutil.copytree(DOGS, tmp_path / "dogs")
    config = load_config(overrides={"workspace": str(tmp_path / "ws")})
    workspace = Workspace(tmp_path / "ws")
    dest = tmp_path / "ds"
    ingest(config, workspace, source=str(source), dest=str(dest))
    (dest / "NOTES.txt").write_text("the user's own file, beside the dataset")
    shutil.rmtree(source / "n02111500-Great_Pyrenees")  # a breed dropped from the source

    kept = ingest(config, workspace, source=str(source), dest=str(dest))
    assert (kept.stale, kept.pruned, kept.num_classes) == (10, 0, 9)
    left = sorted(dest.glob("*/n02111500-Great_Pyrenees/*"))
    assert len(left) == 10  # reported, not deleted, without --prune

    done = run(["ingest", str(source), "--dest", str(dest), "--prune", "--json", "--set", f"workspace={tmp_path / 'ws'}"])
    assert done == 0
    answer = _answer(capsys.readouterr().out)
    assert (answer["stale"], answer["pruned"], answer["uploaded"]) == (0, 10, 0)
    assert not list(dest.glob("*/n02111500-Great_Pyrenees"))  # the emptied class folders too
    assert (dest / "NOTES.txt").read_text().startswith("the user's own file")
    (dest / "NOTES.txt").unlink()
    _check_stored_dataset(answer)  # exactly the manifest's files are left


def test_a_second_ingest_into_the_same_folder_at_once_is_refused(tmp_path):
    import fcntl

    dest = tmp_path / "ds"
    dest.mkdir()
    fd = os.open(dest, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)  # what a running ingest holds
    try:
        done = dogbreed_cli("ingest", str(DOGS), "--dest", str(dest), "--set", f"workspace={tmp_path / 'ws'}", "--json")
    finally:
        os.close(fd)
    assert done.returncode == 1
    assert f"another ingest is writing to {dest}" in error_line(done.stderr)
    assert not any(dest.iterdir())  # it wrote nothing


def test_a_destination_that_cannot_be_a_folder_is_one_line_naming_it(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    dest = blocker / "ds"
    done = dogbreed_cli("ingest", str(DOGS), "--dest", str(dest), "--set", f"workspace={tmp_path / 'ws'}", "--json")
    assert done.returncode == 1
    line = error_line(done.stderr)
    assert (
        line
        == f"error: {dest}: cannot create or open the destination folder (Not a directory); choose a --dest (or data.uri) you can write to"
    )
    assert blocker.read_text() == "not a folder"


def _bomb_zip(tmp_path: Path) -> Path:
    """A dogImages zip with one more 'photo': 3 MiB of zeros, a few KB packed."""
    archive = zip_folder(make_dogimages(tmp_path / "build", breeds=2), tmp_path / "dogImages.zip")
    with zipfile.ZipFile(archive, "a", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("dogImages/train/001.Basset/big.jpg", b"\0" * (3 * 2**20))
    return archive


def test_an_archive_entry_over_max_image_bytes_is_a_problem_never_written(tmp_path):
    archive = _bomb_zip(tmp_path)
    sets = ["data.max_image_bytes=200000"]
    config = load_config(sets=sets, overrides={"workspace": str(tmp_path / "ws")})
    result = ingest(config, Workspace(tmp_path / "ws"), source=str(archive))
    assert result.splits == {"train": 12, "valid": 4, "test": 4}  # every real photo
    ((problem),) = result.problems
    assert problem["file"] == "dogImages/train/001.Basset/big.jpg"
    assert "too large" in problem["problem"] and "data.max_image_bytes 200,000" in problem["problem"]
    downloads = tmp_path / "ws" / "downloads"
    assert not [p for p in downloads.rglob("big.jpg")]
    assert max(p.stat().st_size for p in downloads.rglob("*") if p.is_file()) < 200_000
    # A reuse of the extraction reports it again; --strict fails on it as on any problem.
    assert ingest(config, Workspace(tmp_path / "ws"), source=str(archive)).problems == [problem]
    with pytest.raises(DogbreedError, match=r"1 problem\(s\) and --strict; first: dogImages/train/001.Basset/big.jpg"):
        ingest(config, Workspace(tmp_path / "ws"), source=str(archive), strict=True)


def test_an_archive_entry_that_lies_about_its_size_is_a_problem_and_the_rest_is_ingested(tmp_path):
    archive = _bomb_zip(tmp_path)
    raw = bytearray(archive.read_bytes())  # big.jpg, the last entry, says 10 bytes in both its headers
    struct.pack_into("<I", raw, raw.rfind(b"PK\x03\x04") + 22, 10)
    struct.pack_into("<I", raw, raw.rfind(b"PK\x01\x02") + 24, 10)
    archive.write_bytes(bytes(raw))
    config = load_config(sets=["data.max_image_bytes=200000"], overrides={"workspace": str(tmp_path / "ws")})
    result = ingest(config, Workspace(tmp_path / "ws"), source=str(archive))
    assert result.splits == {"train": 12, "valid": 4, "test": 4}  # every real photo
    ((problem),) = result.problems
    assert problem["file"] == "dogImages/train/001.Basset/big.jpg"
    assert problem["problem"].startswith("refused: its data does not match its header")
    assert not [p for p in (tmp_path / "ws" / "downloads").rglob("big.jpg")]


@pytest.mark.parametrize("why", ["count", "total"])
def test_a_refused_archive_leaves_no_folder_in_downloads(tmp_path, why):
    archive = _bomb_zip(tmp_path)
    sets = ["data.max_image_bytes=200000"]
    sets.append("data.max_archive_files=5" if why == "count" else "data.max_archive_bytes=100000")
    config = load_config(sets=sets, overrides={"workspace": str(tmp_path / "ws")})
    with pytest.raises(DogbreedError, match="dogImages.zip"):
        ingest(config, Workspace(tmp_path / "ws"), source=str(archive))
    archives = tmp_path / "ws" / "downloads" / "archives"
    assert not archives.exists() or list(archives.iterdir()) == []
