"""The local workspace: where the ledger, datasets, jobs, caches and endpoints live."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from dogbreed.ledger import Ledger


@dataclass(frozen=True)
class Workspace:
    root: Path

    @cached_property
    def ledger(self) -> Ledger:
        return Ledger(self.root / "ledger.sqlite")

    def _dir(self, *parts: str) -> Path:
        path = self.root.joinpath(*parts)
        path.mkdir(parents=True, exist_ok=True)
        return path

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
