"""The dataset in the training channel: which files, which split, which breed.

The channel root holds `manifest.json` written by `dogbreed ingest`:
    {"version": 1, "classes": [{"index", "folder", "label"}],
     "files": [{"path": "train/<folder>/<file>", "split", "label", "index", "size", "sha256"}],
     "manifest_sha256": "..."}
and the files under train|valid|test/<class folder>/. With a manifest only its files are used
(ingest excluded the broken ones). Without one the split folders are scanned, so train.py
also runs by hand on an unpacked dogImages.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from .classes import BreedClass, classes_from_folders, classes_from_json
from .presets import to_rgb

SPLITS = ("train", "valid", "test")
MANIFEST = "manifest.json"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


class DatasetError(ValueError):
    """The channel does not hold a usable dataset; the message says what to fix."""


@dataclass(frozen=True)
class Sample:
    path: str  # relative to the dataset root, e.g. 'train/001.Affenpinscher/x.jpg'
    index: int  # class index


@dataclass(frozen=True)
class DatasetIndex:
    root: Path
    classes: list[BreedClass]
    splits: dict[str, list[Sample]]
    identity: str  # manifest_sha256, or the sha256 of the scanned file list

    def subset(self, per_split: int, seed: int) -> DatasetIndex:
        """At most `per_split` samples of each split, a seeded spread over the classes
        (the --max-batches pre-flight). The identity changes with the subset."""
        generator = torch.Generator().manual_seed(seed)
        splits = {}
        for split, samples in self.splits.items():
            order = torch.randperm(len(samples), generator=generator)[:per_split].sort().values
            splits[split] = [samples[i] for i in order.tolist()]
        return DatasetIndex(self.root, self.classes, splits, _hash_samples(splits, extra=self.identity))


def _hash_samples(splits: dict[str, list[Sample]], extra: str = "") -> str:
    digest = hashlib.sha256(extra.encode())
    for split in SPLITS:
        for sample in splits.get(split, []):
            digest.update(f"{split}\0{sample.path}\0{sample.index}\n".encode())
    return digest.hexdigest()


def _from_manifest(root: Path, manifest: dict) -> DatasetIndex:
    if manifest.get("version") != 1:
        raise DatasetError(f"{root / MANIFEST}: unsupported manifest version {manifest.get('version')!r} (expected 1)")
    classes = classes_from_json(manifest)
    splits: dict[str, list[Sample]] = {split: [] for split in SPLITS}
    for entry in manifest["files"]:
        split = entry["split"]
        if split not in splits:
            raise DatasetError(f"{root / MANIFEST}: file {entry['path']} has unknown split {split!r}")
        index = int(entry["index"])
        if not 0 <= index < len(classes):
            raise DatasetError(f"{root / MANIFEST}: file {entry['path']} has class index {index} out of range")
        splits[split].append(Sample(entry["path"], index))
    missing = [s.path for samples in splits.values() for s in samples if not (root / s.path).is_file()]
    if missing:
        raise DatasetError(
            f"{len(missing)} files listed in {root / MANIFEST} are missing, e.g. {missing[:3]}; "
            "re-run `dogbreed ingest` or point the training channel at the ingested folder"
        )
    identity = manifest.get("manifest_sha256") or _hash_samples(splits)
    return DatasetIndex(root, classes, splits, identity)


def _scan(root: Path) -> DatasetIndex:
    train = root / "train"
    if not train.is_dir():
        raise DatasetError(f"{root} has neither {MANIFEST} nor a train/ folder; expected train|valid|test/<breed folder>/<image>")
    classes = classes_from_folders([p.name for p in train.iterdir() if p.is_dir() and not p.name.startswith(".")])
    by_folder = {c.folder: c.index for c in classes}
    splits: dict[str, list[Sample]] = {}
    for split in SPLITS:
        samples = []
        split_dir = root / split
        for folder in sorted(p for p in split_dir.iterdir() if p.is_dir()) if split_dir.is_dir() else []:
            if folder.name not in by_folder:
                raise DatasetError(f"{folder} is a breed that {train} does not have")
            for file in sorted(folder.iterdir()):
                if file.suffix.lower() in IMAGE_SUFFIXES and not file.name.startswith("."):
                    samples.append(Sample(f"{split}/{folder.name}/{file.name}", by_folder[folder.name]))
        splits[split] = samples
    # File sizes join the hash: a re-exported image under the same name gets new features.
    sizes = "".join(f"{s.path}:{(root / s.path).stat().st_size}\n" for ss in splits.values() for s in ss)
    return DatasetIndex(root, classes, splits, _hash_samples(splits, extra=sizes))


_HELD: list[int] = []  # descriptors of the datasets this process reads; closed when it exits


def hold_dataset(root: str | Path) -> None:
    """A shared flock on the dataset folder for as long as this process lives: the folder
    lock `dogbreed ingest` takes (exclusive) is then refused while a job reads, instead of
    replacing or pruning files under it (a job that read some photos of each dataset trained
    on a mix of two). Refused here while an ingest writes. Where the file system has no
    flock the job reads without it."""
    import fcntl
    import os

    try:
        fd = os.open(root, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return  # load_index says what is wrong with the folder
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise DatasetError(
            f"{root} is being written by `dogbreed ingest` right now; wait for it to finish, then train again"
        ) from None
    except OSError:
        os.close(fd)
        return
    _HELD.append(fd)


def load_index(root: str | Path) -> DatasetIndex:
    """The dataset in `root`: from manifest.json when present, else by scanning folders."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset folder {root} does not exist; set SM_CHANNEL_TRAINING or --data-dir")
    manifest = root / MANIFEST
    index = _from_manifest(root, json.loads(manifest.read_text())) if manifest.is_file() else _scan(root)
    for split in ("train", "valid"):
        if not index.splits[split]:
            raise DatasetError(f"{root}: the {split} split is empty; training needs train and valid images")
    return index


class ImageDataset(torch.utils.data.Dataset):
    """(image tensor, class index) pairs, decoded with Pillow through `to_rgb`.

    `item_seed`, when given, reseeds torch's RNG per item so a random transform gives the
    same pixels for the same item wherever and whenever it runs (cached augmented views)."""

    def __init__(
        self,
        root: Path,
        samples: list[Sample],
        transform: Callable[[Image.Image], torch.Tensor],
        item_seed: int | None = None,
    ) -> None:
        self.root = root
        self.samples = samples
        self.transform = transform
        self.item_seed = item_seed

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        sample = self.samples[i]
        with Image.open(self.root / sample.path) as image:
            rgb = to_rgb(image)
        if self.item_seed is not None:
            torch.manual_seed(self.item_seed + i)
        return self.transform(rgb), sample.index
