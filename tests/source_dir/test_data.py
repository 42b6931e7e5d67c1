"""breedkit.data: the manifest decides what trains; without one, the split folders do."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.source_dir.datasets import build_channel


def test_manifest_lists_classes_and_files(breedkit, channel):
    from breedkit.data import load_index

    index = load_index(channel)
    manifest = json.loads((channel / "manifest.json").read_text())
    assert index.identity == manifest["manifest_sha256"]
    assert [c.label for c in index.classes][:3] == ["Basset", "Beagle", "Boston bull"]
    assert {s: len(v) for s, v in index.splits.items()} == {"train": 80, "valid": 10, "test": 10}
    assert index.splits["train"][0].path.startswith("train/n02088238-basset/")


def test_only_manifest_files_are_used(breedkit, dogs_dir, tmp_path):
    """Ingest leaves problem files out of the manifest; train.py must not pick them up."""
    from breedkit.data import DatasetError, load_index

    root = build_channel(dogs_dir, tmp_path / "data")
    stray = root / "train" / "n02088238-basset" / "zz-corrupt.jpg"
    stray.write_bytes(b"not a jpeg")
    index = load_index(root)
    assert all(s.path != "train/n02088238-basset/zz-corrupt.jpg" for s in index.splits["train"])
    listed = root / index.splits["valid"][0].path
    listed.unlink()
    with pytest.raises(DatasetError, match="1 files listed in .*manifest.json are missing"):
        load_index(root)


def test_folders_are_scanned_without_a_manifest(breedkit, dogs_dir, tmp_path, channel):
    from breedkit.data import DatasetError, load_index

    root = build_channel(dogs_dir, tmp_path / "data", manifest=False)
    scanned = load_index(root)
    listed = load_index(channel)
    assert [c.folder for c in scanned.classes] == [c.folder for c in listed.classes]
    assert [c.label for c in scanned.classes] == [c.label for c in listed.classes]
    assert scanned.splits == listed.splits
    assert scanned.identity != listed.identity and len(scanned.identity) == 64
    shutil.rmtree(root / "valid")
    with pytest.raises(DatasetError, match="valid split is empty"):
        load_index(root)
    with pytest.raises(DatasetError, match="neither manifest.json nor a train/ folder"):
        load_index(tmp_path)


def test_preflight_subset_is_seeded_and_has_its_own_identity(breedkit, channel):
    from breedkit.data import load_index

    index = load_index(channel)
    small = index.subset(16, seed=0)
    assert [len(small.splits[s]) for s in ("train", "valid", "test")] == [16, 10, 10]
    assert small.splits == index.subset(16, seed=0).splits
    assert len({s.index for s in small.splits["train"]}) > 5  # a spread over breeds, not the first two
    assert small.identity != index.identity


def test_udacity_and_stanford_folder_names_become_breed_labels(breedkit):
    from breedkit.classes import label_from_folder

    assert label_from_folder("001.Affenpinscher") == "Affenpinscher"
    assert label_from_folder("010.Anatolian_shepherd_dog") == "Anatolian shepherd dog"
    assert label_from_folder("n02096585-Boston_bull") == "Boston bull"
    assert label_from_folder("n02088364-beagle") == "Beagle"
    assert label_from_folder("Beagle") == "Beagle"
