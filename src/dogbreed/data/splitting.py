"""Deterministic, stratified train/valid/test split for sources without split folders.

Each class is split on its own (stratified), in an order given by a keyed hash of each
file's path rather than a seeded shuffle: the result depends only on (seed, path), not on
listing order or Python's random module, and adding one photo moves at most a few others.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

from dogbreed.data.layout import SPLITS


def split_counts(n: int, valid: float, test: float) -> tuple[int, int, int]:
    """(train, valid, test) counts for a class of n files.

    With 3 or more files every split gets at least one, so each class is trained, selected
    and tested on; with fewer, training comes first, then validation.
    """
    if n < 3:
        return (1, n - 1, 0) if n else (0, 0, 0)
    n_valid = max(1, int(n * valid + 0.5))
    n_test = max(1, int(n * test + 0.5))
    while n - n_valid - n_test < 1:
        # Tiny classes with large valid/test ratios: give back to training, larger share first.
        if n_valid >= n_test and n_valid > 1:
            n_valid -= 1
        else:
            n_test -= 1
    return n - n_valid - n_test, n_valid, n_test


def _order_key(seed: int, path: str) -> str:
    return hashlib.sha256(f"{seed}\0{path}".encode()).hexdigest()


def assign_splits(groups: Mapping[str, Sequence[str]], valid: float, test: float, seed: int) -> dict[str, str]:
    """{path: split} for every path in groups ({class folder: [paths]})."""
    out: dict[str, str] = {}
    for paths in groups.values():
        ordered = sorted(set(paths), key=lambda p: (_order_key(seed, p), p))
        counts = split_counts(len(ordered), valid, test)
        start = 0
        for split, count in zip(SPLITS, counts):
            for path in ordered[start : start + count]:
                out[path] = split
            start += count
    return out
