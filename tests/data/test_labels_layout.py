"""Labels from folder names, and layout detection from listings (pure, no disk)."""

from __future__ import annotations

import pytest

from dogbreed.data.labels import label_for
from dogbreed.data.layout import detect_layout, list_folder
from dogbreed.errors import DogbreedError


@pytest.mark.parametrize(
    ("folder", "label"),
    [
        ("001.Affenpinscher", "Affenpinscher"),
        ("124.German_shepherd_dog", "German shepherd dog"),
        ("n02085620-Chihuahua", "Chihuahua"),
        ("n02088364-beagle", "Beagle"),
        ("n02086240-Shih-Tzu", "Shih-Tzu"),
        ("Boston_bull", "Boston bull"),
        ("golden__retriever", "Golden retriever"),
        ("Beagle", "Beagle"),
    ],
)
def test_label_for(folder, label):
    assert label_for(folder) == label


def test_dogimages_layout_inside_a_wrapper_keeps_splits():
    files = [
        f"dogImages/{split}/{folder}/{folder[4:]}_{i}.jpg"
        for split in ("train", "valid", "test")
        for folder in ("001.Affenpinscher", "002.Afghan_hound")
        for i in range(2)
    ]
    layout = detect_layout(files + ["__MACOSX/dogImages/._x.jpg", "dogImages/.DS_Store"])
    assert layout.kind == "dogimages" and layout.has_splits
    assert layout.root == "dogImages"
    assert layout.folders == ["001.Affenpinscher", "002.Afghan_hound"]
    assert len(layout.files) == 12
    first = layout.files[0]
    assert (first.path, first.split, first.folder, first.name) == (
        "test/001.Affenpinscher/Affenpinscher_0.jpg",
        "test",
        "001.Affenpinscher",
        "Affenpinscher_0.jpg",
    )
    assert layout.ignored == ["__MACOSX/dogImages/._x.jpg", "dogImages/.DS_Store"]
    assert layout.stray == []


def test_split_aliases_are_recognised():
    files = [f"{split}/{c}/a.jpg" for split in ("training", "val", "test") for c in ("A", "B")]
    layout = detect_layout(files)
    assert layout.kind == "dogimages"
    assert {f.split for f in layout.files} == {"train", "valid", "test"}


def test_stanford_layout_and_plain_folders():
    stanford = detect_layout(["n02085620-Chihuahua/a.jpg", "n02088364-beagle/b.jpg"])
    assert stanford.kind == "stanford" and not stanford.has_splits
    assert [f.split for f in stanford.files] == [None, None]
    plain = detect_layout(["Images/Beagle/a.jpg", "Images/Boston_bull/b.jpg", "Images/Boston_bull/sub/c.jpg"])
    assert plain.kind == "folders" and plain.root == "Images"
    assert [f.name for f in plain.files] == ["a.jpg", "b.jpg", "sub/c.jpg"]


def test_files_beside_class_folders_are_stray_and_empty_folders_are_classes():
    layout = detect_layout(["Beagle/a.jpg", "Boxer/b.jpg", "README.txt"], dirs=["Beagle", "Boxer", "Collie"])
    assert layout.stray == ["README.txt"]
    assert layout.folders == ["Beagle", "Boxer", "Collie"]


@pytest.mark.parametrize(
    ("files", "dirs", "message"),
    [
        (["a.jpg", "b.jpg"], [], "files at the top level and no class folders"),
        ([], [], "no photos found"),
        (["Beagle/a.jpg", "Beagle/b.jpg"], [], "only one class folder (Beagle/)"),
        (["wrap/Beagle/a.jpg"], [], "only one class folder"),
        (["train/A/a.jpg", "test/A/b.jpg", "train/B/c.jpg"], [], "no valid/ split folder"),
        (["train/A/a.jpg", "val/A/b.jpg", "valid/A/c.jpg", "test/A/d.jpg"], [], "look like the valid split"),
    ],
)
def test_wrong_layouts_are_one_line_errors(files, dirs, message):
    with pytest.raises(DogbreedError) as caught:
        detect_layout(files, dirs, where="src")
    text = str(caught.value)
    assert message in text and text.startswith("src") and "\n" not in text


def test_list_folder_sees_empty_folders(tmp_path):
    (tmp_path / "A").mkdir()
    (tmp_path / "B" / "sub").mkdir(parents=True)
    (tmp_path / "B" / "sub" / "x.jpg").write_bytes(b"x")
    files, dirs = list_folder(tmp_path)
    assert files == ["B/sub/x.jpg"]
    assert sorted(dirs) == ["A", "B", "B/sub"]
