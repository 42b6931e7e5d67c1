"""From a layout and per-file checks to what the dataset will hold, and every problem found.

Pure: no disk, no network. Each excluded file or class appears in `problems` with the reason,
so nothing disappears silently. Order of the rules:
1. files outside any class folder and files that failed their check are excluded;
2. byte-identical files (same sha256) are kept once, so no split evaluates on a photo another
   split trained on (sources with split folders keep the train copy first);
3. sources without split folders are split per class (data.split, data.seed);
4. a class left with no usable photo is dropped; a class missing from a split is reported;
5. class folders whose breed labels collide (Beagle/ and beagle/) would be two classes with one
   name: the first folder (sorted) is kept, each other one is excluded with a problem naming
   both, so --strict fails on it and the user renames or merges the folders.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from dogbreed.data.labels import colliding_labels, label_for
from dogbreed.data.layout import SPLITS, Layout, SourceFile
from dogbreed.data.splitting import assign_splits
from dogbreed.errors import DogbreedError

if TYPE_CHECKING:
    from dogbreed.data.images import ImageCheck  # annotations only: planning needs no Pillow


@dataclass(frozen=True)
class PlannedFile:
    path: str  # where it is stored: <split>/<class folder>/<name>
    split: str
    folder: str
    source: Path  # the local file whose bytes are stored (original or resized copy)
    size: int
    sha256: str

    def manifest_entry(self) -> dict:
        return {"path": self.path, "split": self.split, "folder": self.folder, "size": self.size, "sha256": self.sha256}


@dataclass
class Plan:
    labels: dict[str, str]  # class folder -> breed name, for the classes kept
    files: list[PlannedFile]
    problems: list[dict[str, str]] = field(default_factory=list)

    def split_counts(self) -> dict[str, int]:
        counts = dict.fromkeys(SPLITS, 0)
        for planned in self.files:
            counts[planned.split] += 1
        return counts


def plan_dataset(
    layout: Layout, checks: Mapping[str, ImageCheck], valid: float, test: float, seed: int, where: str = "source"
) -> Plan:
    problems = [{"file": path, "problem": "outside any class folder; move it into its breed's folder"} for path in layout.stray]
    usable = []
    for source_file in layout.files:
        check = checks[source_file.path]
        if check.problem:
            problems.append({"file": source_file.path, "problem": check.problem})
        else:
            usable.append(source_file)

    # Train first, so a photo repeated in valid/test is the one excluded.
    split_rank = {split: rank for rank, split in enumerate(SPLITS)}
    usable.sort(key=lambda f: (split_rank.get(f.split or "", 0), f.path))
    first_by_sha: dict[str | None, SourceFile] = {}
    unique = []
    for source_file in usable:
        digest = checks[source_file.path].sha256
        first = first_by_sha.setdefault(digest, source_file)
        if first is source_file:
            unique.append(source_file)
        elif first.split != source_file.split:
            problems.append(
                {
                    "file": source_file.path,
                    "problem": f"same image (sha256) as {first.path} in the {first.split} split; "
                    "excluded so no split evaluates on training data",
                }
            )
        else:
            problems.append({"file": source_file.path, "problem": f"duplicate of {first.path} (same sha256); excluded"})

    split_of = {f.path: f.split for f in unique}
    if not layout.has_splits:
        groups: dict[str, list[str]] = defaultdict(list)
        for source_file in unique:
            groups[source_file.folder].append(source_file.path)
        split_of = assign_splits(groups, valid, test, seed)

    per_class: dict[str, dict[str, int]] = {folder: dict.fromkeys(SPLITS, 0) for folder in layout.folders}
    for source_file in unique:
        per_class[source_file.folder][split_of[source_file.path]] += 1
    collided = set()
    for label, group in colliding_labels([f for f, counts in per_class.items() if sum(counts.values())]).items():
        kept, *others = group
        for folder in others:
            collided.add(folder)
            problems.append(
                {
                    "file": f"{folder}/",
                    "problem": f"same breed label {label!r} as folder {kept}/ (kept); "
                    "excluded so one breed is not two classes: rename or merge the folders",
                }
            )
    labels = {}
    for folder, counts in per_class.items():
        if folder in collided:
            continue
        total = sum(counts.values())
        if total == 0:
            problems.append({"file": f"{folder}/", "problem": "class has no usable images; left out of the classes"})
            continue
        labels[folder] = label_for(folder)
        for split, count in counts.items():
            if count == 0:
                problems.append(
                    {"file": f"{split}/{folder}/", "problem": f"class has no images in the {split} split ({total} usable in all)"}
                )
    if len(labels) < 2:
        raise DogbreedError(
            f"{where}: only {len(labels)} class(es) with usable images; a classifier needs at least two "
            "(see the problems reported for each file)"
        )

    files = []
    for source_file in unique:
        if source_file.folder not in labels:
            continue  # a class left out above
        check = checks[source_file.path]
        split = split_of[source_file.path]
        assert check.stored is not None and check.stored_sha256 is not None  # usable checks always have them
        files.append(
            PlannedFile(
                path=f"{split}/{source_file.folder}/{source_file.name}",
                split=split,
                folder=source_file.folder,
                source=check.stored,
                size=check.stored_size,
                sha256=check.stored_sha256,
            )
        )
    files.sort(key=lambda f: f.path)
    problems.sort(key=lambda p: p["file"])
    return Plan(labels=labels, files=files, problems=problems)
