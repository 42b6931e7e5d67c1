"""The local workspace: where the ledger, datasets, jobs, caches and endpoints live."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from dogbreed.errors import ConfigError, DogbreedError
from dogbreed.ledger import Ledger


def _make_folder(path: Path, root: Path) -> Path:
    """mkdir -p, with one line for a workspace that cannot hold folders: the workspace (or a
    folder above or in it) is a file, or the disk or permissions refuse."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        in_the_way = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), path)
        raise ConfigError(
            f"workspace {root}: {in_the_way} is a file, not a folder; set `workspace` "
            "(--set workspace=DIR, or in a --config file) to a folder, or move that file away"
        ) from None
    except OSError as exc:
        raise DogbreedError(
            f"workspace {root}: cannot create {exc.filename or path} ({exc.strerror}); "
            "make it writable or set `workspace` (--set workspace=DIR) to a folder you can write"
        ) from None
    return path


@dataclass(frozen=True)
class Workspace:
    root: Path

    @cached_property
    def ledger(self) -> Ledger:
        _make_folder(self.root, self.root)
        return Ledger(self.root / "ledger.sqlite")

    def _dir(self, *parts: str) -> Path:
        return _make_folder(self.root.joinpath(*parts), self.root)

    def datasets(self) -> Path:
        return self._dir("data")

    def downloads(self) -> Path:
        return self._dir("downloads")

    def job(self, name: str) -> Path:
        return self._dir("jobs", name)

    def tuning(self, name: str) -> Path:
        return self._dir("tuning", name)

    def cache(self, kind: str = "features") -> Path:
        return self._dir("cache", kind)

    def endpoint(self, name: str) -> Path:
        return self._dir("endpoints", name)

    def reports(self) -> Path:
        return self._dir("reports")
