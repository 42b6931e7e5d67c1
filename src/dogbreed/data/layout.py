"""Which dataset layout a folder holds, decided from its listing alone (no disk access).

Recognised, also inside one or more wrapping folders (dogImages.zip unpacks to dogImages/):
- dogimages: train|valid|test/<class folder>/... (any class folder naming; split folders kept)
- stanford:  n02085620-Chihuahua/... (WordNet id - breed), no split folders
- folders:   Beagle/... (one folder per class), no split folders
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from dogbreed.data.labels import is_stanford_folder
from dogbreed.errors import DogbreedError

SPLITS = ("train", "valid", "test")
# Names people give split folders; the stored dataset always uses SPLITS.
SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "valid": "valid",
    "val": "valid",
    "validation": "valid",
    "test": "test",
    "testing": "test",
}
# Files operating systems and archivers leave behind; never photos, never worth a problem line.
_JUNK_FILES = {".ds_store", "thumbs.db", "desktop.ini"}
_JUNK_DIRS = {"__macosx"}


@dataclass(frozen=True)
class SourceFile:
    path: str  # relative to the source folder, posix: what problems and logs name
    folder: str  # the class folder
    split: str | None  # train|valid|test when the source has split folders
    name: str  # path below the class folder, usually just the file name


@dataclass
class Layout:
    kind: str  # dogimages | stanford | folders
    root: str  # the wrapping folders that were looked through ("" when none)
    folders: list[str]  # class folders, sorted; empty ones included
    files: list[SourceFile]
    stray: list[str] = field(default_factory=list)  # files outside any class folder
    ignored: list[str] = field(default_factory=list)  # OS junk (.DS_Store, __MACOSX/...)

    @property
    def has_splits(self) -> bool:
        return self.kind == "dogimages"


def is_junk(path: str) -> bool:
    parts = PurePosixPath(path).parts
    if any(part.lower() in _JUNK_DIRS for part in parts[:-1]):
        return True
    # Hidden files and folders (.git, ._AppleDouble, .DS_Store) are never part of a dataset.
    return any(part.startswith(".") for part in parts) or parts[-1].lower() in _JUNK_FILES


class _Tree:
    """Directories and their direct files/subfolders, from a flat listing."""

    def __init__(self, files: Iterable[str], dirs: Iterable[str]) -> None:
        self.children: dict[str, set[str]] = {"": set()}
        self.files: dict[str, list[str]] = {"": []}
        for d in dirs:
            self._add_dir(d)
        for f in files:
            parent = str(PurePosixPath(f).parent)
            parent = "" if parent == "." else parent
            self._add_dir(parent)
            self.files[parent].append(f)

    def _add_dir(self, path: str) -> None:
        while path not in self.children:
            self.children[path] = set()
            self.files[path] = []
            parent = str(PurePosixPath(path).parent)
            parent = "" if parent == "." else parent
            self._add_dir(parent)
            self.children[parent].add(path)

    def subdirs(self, path: str) -> list[str]:
        return sorted(self.children.get(path, ()))

    def files_below(self, path: str) -> list[str]:
        out = list(self.files.get(path, ()))
        for child in self.subdirs(path):
            out += self.files_below(child)
        return out


def _name(path: str) -> str:
    return PurePosixPath(path).name


def _relative(path: str, base: str) -> str:
    return str(PurePosixPath(path).relative_to(base)) if base else path


def detect_layout(files: Iterable[str], dirs: Iterable[str] = (), where: str = "source") -> Layout:
    """Decide the layout from relative posix paths. Raises DogbreedError for a wrong layout."""
    files, ignored = list(files), []
    kept = [f for f in files if not is_junk(f)]
    ignored = sorted(set(files) - set(kept))
    tree = _Tree(kept, [d for d in dirs if not is_junk(d + "/x")])

    root = ""
    # Look through wrapping folders: no files of their own and exactly one subfolder that
    # itself has subfolders (a lone folder of photos is one class, not a wrapper).
    while not tree.files[root] and len(tree.subdirs(root)) == 1 and tree.subdirs(tree.subdirs(root)[0]):
        root = tree.subdirs(root)[0]

    top = tree.subdirs(root)
    splits: dict[str, str] = {}
    for d in top:
        alias = SPLIT_ALIASES.get(_name(d).lower())
        if alias:
            if alias in splits:
                raise DogbreedError(
                    f"{where}: both {_name(splits[alias])}/ and {_name(d)}/ look like the {alias} split; keep one"
                )
            splits[alias] = d
    stray = list(tree.files[root])
    found: list[SourceFile] = []
    folders: set[str] = set()

    if splits:
        missing = [s for s in SPLITS if s not in splits]
        if missing:
            have = ", ".join(f"{_name(d)}/" for d in splits.values())
            raise DogbreedError(
                f"{where}: found {have} but no {'/, '.join(missing)}/ split folder; "
                "add it, or remove the split folders so ingest splits by data.split"
            )
        for d in top:
            if d not in splits.values():
                stray += tree.files_below(d)
        for split, split_dir in splits.items():
            stray += tree.files[split_dir]
            for class_dir in tree.subdirs(split_dir):
                folders.add(_name(class_dir))
                for f in tree.files_below(class_dir):
                    found.append(SourceFile(_relative(f, root), _name(class_dir), split, _relative(f, class_dir)))
        kind = "dogimages"
    else:
        for class_dir in top:
            folders.add(_name(class_dir))
            for f in tree.files_below(class_dir):
                found.append(SourceFile(_relative(f, root), _name(class_dir), None, _relative(f, class_dir)))
        kind = "stanford" if folders and all(is_stanford_folder(f) for f in folders) else "folders"

    inside = f" (inside {root}/)" if root else ""
    if not folders:
        if stray:
            raise DogbreedError(
                f"{where}{inside}: {len(stray)} files at the top level and no class folders; "
                "put each breed's photos in a folder named after it (e.g. Beagle/*.jpg)"
            )
        raise DogbreedError(f"{where}{inside}: no photos found; expected one folder per breed (e.g. Beagle/*.jpg)")
    if len(folders) < 2:
        raise DogbreedError(
            f"{where}{inside}: only one class folder ({sorted(folders)[0]}/); a classifier needs at least two breeds"
        )
    return Layout(
        kind=kind,
        root=root,
        folders=sorted(folders),
        files=sorted(found, key=lambda f: f.path),
        stray=sorted(_relative(f, root) for f in stray),
        ignored=ignored,
    )


def list_folder(root: Path) -> tuple[list[str], list[str]]:
    """Every file and folder below root, as relative posix paths (symlinked folders are not entered)."""
    files, dirs = [], []
    for current, subdirs, names in os.walk(root):
        rel = Path(current).relative_to(root).as_posix()
        rel = "" if rel == "." else rel + "/"
        dirs += [rel + d for d in subdirs]
        files += [rel + n for n in names]
    return files, dirs
