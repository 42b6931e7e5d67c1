"""Build a training channel from the vendored photos, shaped as `dogbreed ingest` writes it.

The real ingest is another module (written alongside this one); this helper writes the same
manifest.json shape (DESIGN section 4 / breedkit/data.py) so train.py can be tested on its own:
a deterministic 8/1/1 split per breed by sorted file name.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

SPLIT_OF_POSITION = ["train"] * 8 + ["valid", "test"]


def _label(folder: str) -> str:
    # 'n02088364-beagle' -> 'Beagle', 'n02096585-Boston_bull' -> 'Boston bull'
    name = folder.split("-", 1)[1].replace("_", " ")
    return name[0].upper() + name[1:]


def build_channel(dogs_dir: Path, dest: Path, manifest: bool = True) -> Path:
    """Copy dogs_dir (breed folders of 10 photos) into dest/{train,valid,test}/<breed>/..."""
    dest.mkdir(parents=True, exist_ok=True)
    folders = sorted(p.name for p in dogs_dir.iterdir() if p.is_dir())
    classes = [{"index": i, "folder": f, "label": _label(f)} for i, f in enumerate(folders)]
    files = []
    for cls in classes:
        photos = sorted((dogs_dir / cls["folder"]).iterdir())
        if len(photos) != len(SPLIT_OF_POSITION):
            raise ValueError(f"{dogs_dir / cls['folder']}: expected 10 photos, found {len(photos)}")
        for split, photo in zip(SPLIT_OF_POSITION, photos):
            rel = f"{split}/{cls['folder']}/{photo.name}"
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(photo, target)
            data = target.read_bytes()
            files.append(
                {
                    "path": rel,
                    "split": split,
                    "label": cls["label"],
                    "index": cls["index"],
                    "size": len(data),
                    "sha256": hashlib.sha256(data).hexdigest(),
                }
            )
    if manifest:
        body = {"version": 1, "classes": classes, "files": files}
        digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        (dest / "manifest.json").write_text(json.dumps({**body, "manifest_sha256": digest}, indent=2))
    return dest
