"""manifest.json: the contract between an ingested dataset and the training job.

    {"version": 1, "source": ..., "layout": "dogimages|stanford|folders",
     "classes": [{"index", "folder", "label"}, ...]   sorted by folder, index = position,
     "files": [{"path", "split", "label", "index", "size", "sha256"}, ...]   sorted by path,
     "manifest_sha256": sha256 of the canonical JSON of {"classes", "files"}}

The hash is the dataset's identity (later steps key caches on it), so it covers only what
the data is: never the source string, timestamps, absolute paths or dict order.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

MANIFEST_NAME = "manifest.json"
VERSION = 1
_CLASS_KEYS = ("index", "folder", "label")
_FILE_KEYS = ("path", "split", "label", "index", "size", "sha256")


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def manifest_hash(classes: Iterable[Mapping[str, Any]], files: Iterable[Mapping[str, Any]]) -> str:
    """Order-independent: entries are put in their canonical order before hashing."""
    classes = sorted(({k: c[k] for k in _CLASS_KEYS} for c in classes), key=lambda c: c["folder"])
    files = sorted(({k: f[k] for k in _FILE_KEYS} for f in files), key=lambda f: f["path"])
    return hashlib.sha256(canonical_json({"classes": classes, "files": files})).hexdigest()


def build_manifest(source: str, layout: str, labels: Mapping[str, str], files: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """labels: {class folder: label}; files: dicts with path, split, folder, size, sha256."""
    classes = [{"index": index, "folder": folder, "label": labels[folder]} for index, folder in enumerate(sorted(labels))]
    index_of = {c["folder"]: c["index"] for c in classes}
    entries = sorted(
        (
            {
                "path": f["path"],
                "split": f["split"],
                "label": labels[f["folder"]],
                "index": index_of[f["folder"]],
                "size": int(f["size"]),
                "sha256": f["sha256"],
            }
            for f in files
        ),
        key=lambda f: f["path"],
    )
    return {
        "version": VERSION,
        "source": source,
        "layout": layout,
        "classes": classes,
        "files": entries,
        "manifest_sha256": manifest_hash(classes, entries),
    }


def dump_manifest(manifest: Mapping[str, Any]) -> bytes:
    """The stored form: readable, keys in the documented order, UTF-8."""
    return (json.dumps(manifest, indent=1, ensure_ascii=False) + "\n").encode("utf-8")


def parse_manifest(raw: bytes, where: str = "manifest.json") -> dict[str, Any]:
    """Load and check a stored manifest; ValueError names what is wrong."""
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{where}: not valid JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("version") != VERSION:
        raise ValueError(f"{where}: not a version {VERSION} dogbreed manifest")
    try:
        expected = manifest_hash(doc["classes"], doc["files"])
    except (KeyError, TypeError) as exc:
        raise ValueError(f"{where}: malformed entry ({exc})") from None
    if doc.get("manifest_sha256") != expected:
        raise ValueError(f"{where}: manifest_sha256 does not match its classes and files")
    return doc


def split_counts(manifest: Mapping[str, Any]) -> dict[str, int]:
    counts = {"train": 0, "valid": 0, "test": 0}
    for entry in manifest["files"]:
        counts[entry["split"]] = counts.get(entry["split"], 0) + 1
    return counts
