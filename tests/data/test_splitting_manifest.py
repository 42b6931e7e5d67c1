"""The deterministic stratified split and the manifest's order-independent identity."""

from __future__ import annotations

import json
import random

import pytest

from dogbreed.data.manifest import build_manifest, dump_manifest, manifest_hash, parse_manifest
from dogbreed.data.splitting import assign_splits, split_counts


def _groups(sizes: dict[str, int]) -> dict[str, list[str]]:
    return {c: [f"{c}/{i:04d}.jpg" for i in range(n)] for c, n in sizes.items()}


@pytest.mark.parametrize(
    ("n", "expected"),
    [(0, (0, 0, 0)), (1, (1, 0, 0)), (2, (1, 1, 0)), (3, (1, 1, 1)), (10, (8, 1, 1)), (100, (80, 10, 10)), (4, (2, 1, 1))],
)
def test_split_counts(n, expected):
    assert split_counts(n, 0.1, 0.1) == expected


def test_split_is_deterministic_and_independent_of_listing_order():
    groups = _groups({"A": 50, "B": 37, "C": 3})
    first = assign_splits(groups, 0.1, 0.1, seed=0)
    shuffled = {c: random.Random(1).sample(paths, len(paths)) for c, paths in reversed(list(groups.items()))}
    assert assign_splits(shuffled, 0.1, 0.1, seed=0) == first
    assert assign_splits(groups, 0.1, 0.1, seed=1) != first


def test_split_is_stratified_and_every_class_of_three_or_more_is_in_every_split():
    sizes = {"A": 100, "B": 40, "C": 7, "D": 3, "E": 2}
    split = assign_splits(_groups(sizes), 0.15, 0.15, seed=3)
    for cls, n in sizes.items():
        counts = {s: sum(1 for p, sp in split.items() if p.startswith(cls + "/") and sp == s) for s in ("train", "valid", "test")}
        assert sum(counts.values()) == n
        if n >= 3:
            assert min(counts.values()) >= 1, (cls, counts)
        if n >= 40:
            # Each class keeps the ratios to within rounding.
            assert abs(counts["valid"] - 0.15 * n) <= 1 and abs(counts["test"] - 0.15 * n) <= 1
    assert {sp for p, sp in split.items() if p.startswith("E/")} == {"train", "valid"}


def test_adding_a_photo_moves_few_others():
    before = assign_splits(_groups({"A": 200}), 0.1, 0.1, seed=0)
    after = assign_splits(_groups({"A": 201}), 0.1, 0.1, seed=0)
    moved = [p for p in before if before[p] != after[p]]
    assert len(moved) <= 4


def _sample_manifest():
    labels = {"002.Boxer": "Boxer", "001.Beagle": "Beagle"}
    files = [
        {"path": "valid/002.Boxer/b.jpg", "split": "valid", "folder": "002.Boxer", "size": 5, "sha256": "b" * 64},
        {"path": "train/001.Beagle/a.jpg", "split": "train", "folder": "001.Beagle", "size": 3, "sha256": "a" * 64},
    ]
    return labels, files


def test_manifest_shape_and_order():
    labels, files = _sample_manifest()
    manifest = build_manifest("dogImages.zip", "dogimages", labels, files)
    assert list(manifest) == ["version", "source", "layout", "classes", "files", "manifest_sha256"]
    assert manifest["classes"] == [
        {"index": 0, "folder": "001.Beagle", "label": "Beagle"},
        {"index": 1, "folder": "002.Boxer", "label": "Boxer"},
    ]
    assert manifest["files"][0] == {
        "path": "train/001.Beagle/a.jpg",
        "split": "train",
        "label": "Beagle",
        "index": 0,
        "size": 3,
        "sha256": "a" * 64,
    }
    assert parse_manifest(dump_manifest(manifest)) == manifest


def test_manifest_hash_is_stable_under_reordering_and_ignores_source():
    labels, files = _sample_manifest()
    one = build_manifest("/abs/path/dogs", "folders", labels, files)
    two = build_manifest(
        "dogs", "folders", dict(reversed(list(labels.items()))), [dict(reversed(list(f.items()))) for f in reversed(files)]
    )
    assert one["manifest_sha256"] == two["manifest_sha256"]
    # Reordered entries and keys inside a stored manifest still hash the same.
    shuffled = json.loads(json.dumps(one))
    shuffled["files"].reverse()
    shuffled["classes"] = [dict(reversed(list(c.items()))) for c in reversed(shuffled["classes"])]
    assert manifest_hash(shuffled["classes"], shuffled["files"]) == one["manifest_sha256"]


def test_manifest_hash_changes_with_content():
    labels, files = _sample_manifest()
    base = build_manifest("s", "folders", labels, files)["manifest_sha256"]
    files[0] = {**files[0], "sha256": "c" * 64}
    assert build_manifest("s", "folders", labels, files)["manifest_sha256"] != base
    labels, files = _sample_manifest()
    files[1] = {**files[1], "split": "test", "path": "test/001.Beagle/a.jpg"}
    assert build_manifest("s", "folders", labels, files)["manifest_sha256"] != base


def test_tampered_manifest_is_rejected():
    labels, files = _sample_manifest()
    manifest = build_manifest("s", "folders", labels, files)
    manifest["files"][0]["index"] = 1
    with pytest.raises(ValueError, match="does not match"):
        parse_manifest(dump_manifest(manifest))
