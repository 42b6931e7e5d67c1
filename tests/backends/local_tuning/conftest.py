"""A workspace with the vendored photos ingested, for real tuning runs through the CLI.

Every test gets its own workspace; all share one feature cache directory (its key is the
dataset's manifest hash, arch, weights and preset, not the workspace), so the backbone runs
once per session instead of once per test. Processes a test leaves behind (workers, job
supervisors, train.py) are killed by pid at teardown.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from dogbreed.ledger import Ledger
from tests.conftest import EXAMPLES, dogbreed_cli

WEIGHTS = EXAMPLES / "weights" / "mobilenet_v2-imagenet1k-from-int8.fp16.pth"

# Small on purpose: 1-2 epochs on 100 photos keeps a trial to seconds once features are cached.
BASE_CONFIG = {
    "model": {"arch": "mobilenet_v2", "weights": str(WEIGHTS), "freeze": "backbone"},
    "train": {"epochs": 2, "batch_size": 32, "num_workers": 0},
    "tune": {
        "strategy": "Random",
        "max_jobs": 3,
        "max_parallel_jobs": 1,
        "early_stopping": "Off",
        "seed": 0,
        "objective": {"metric": "valid_acc", "type": "Maximize"},
        "ranges": {
            "lr": {"type": "continuous", "min": 0.001, "max": 0.05, "scaling": "Logarithmic"},
            "epochs": {"type": "integer", "min": 1, "max": 2},
            "batch_size": {"type": "categorical", "values": [16, 32]},
        },
    },
}


def build_dataset(source: Path, root: Path) -> tuple[str, str]:
    """The ingest engineer's layout, for when dogbreed.workflows.ingest is not there:
    <root>/{train,valid,test}/<class folder>/<file> + manifest.json. 8/1/1 photos per breed."""
    classes, files = [], []
    for index, folder in enumerate(sorted(p.name for p in source.iterdir() if p.is_dir())):
        classes.append({"index": index, "folder": folder, "label": folder.split("-", 1)[-1].replace("_", " ")})
        photos = sorted((source / folder).glob("*.jpg"))
        for position, photo in enumerate(photos):
            split = "train" if position < len(photos) - 2 else ("valid" if position == len(photos) - 2 else "test")
            target = root / split / folder / photo.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(photo, target)
            data = target.read_bytes()
            files.append(
                {
                    "path": f"{split}/{folder}/{photo.name}",
                    "split": split,
                    "label": classes[-1]["label"],
                    "index": index,
                    "size": len(data),
                    "sha256": hashlib.sha256(data).hexdigest(),
                }
            )
    canonical = json.dumps({"classes": classes, "files": files}, sort_keys=True, separators=(",", ":")).encode()
    digest = hashlib.sha256(canonical).hexdigest()
    manifest = {"version": 1, "classes": classes, "files": files, "manifest_sha256": digest}
    (root / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return str(root), digest


def ingest_examples(config_path: Path, workspace: Path) -> str:
    """examples/dogs into the workspace, recorded in the ledger as the latest dataset."""
    try:
        from dogbreed.config import load_config
        from dogbreed.workflows.ingest import ingest
        from dogbreed.workspace import Workspace
    except ImportError:
        uri, digest = build_dataset(EXAMPLES / "dogs", workspace / "data" / "dogs")
        Ledger(workspace / "ledger.sqlite").record("dataset", "dogs", "local", uri=uri, meta={"manifest_sha256": digest})
        return uri
    return ingest(load_config([config_path]), Workspace(workspace), source=str(EXAMPLES / "dogs")).dataset_uri


def reap(workspace: Path) -> None:
    """Kill, by pid, whatever a test started and left running in this workspace."""
    pids = []
    for pid_file in workspace.glob("tuning/*/workers/*.pid"):
        pids.append(int(pid_file.read_text()))
    for status in workspace.glob("jobs/*/status.json"):
        try:
            blob = json.loads(status.read_text())
        except (OSError, ValueError):
            continue
        pids += [blob[key] for key in ("supervisor_pid", "pid") if blob.get(key)]
    for pid in pids:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if str(workspace).encode() in cmdline:  # still ours: pids are reused
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@dataclass
class TuneEnv:
    root: Path
    config: Path
    workspace: Path
    dataset_uri: str

    def write_config(self, **sections: dict) -> Path:
        """BASE_CONFIG with some sections replaced key by key (one level deep)."""
        merged = json.loads(json.dumps(BASE_CONFIG))
        merged["workspace"] = str(self.workspace)
        for section, values in sections.items():
            merged.setdefault(section, {}).update(values)
        self.config.write_text(yaml.safe_dump(merged))
        return self.config

    def cli(self, *args: str, timeout: float = 300):
        return dogbreed_cli(*args, "-c", str(self.config), cwd=self.root, timeout=timeout)

    @property
    def ledger(self) -> Ledger:
        return Ledger(self.workspace / "ledger.sqlite")


@pytest.fixture(scope="session")
def shared_feature_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("feature-cache")


@pytest.fixture
def tune_env(tmp_path: Path, shared_feature_cache: Path):
    workspace = tmp_path / ".dogbreed"
    env = TuneEnv(root=tmp_path, config=tmp_path / "tune.yaml", workspace=workspace, dataset_uri="")
    env.write_config()
    (workspace / "cache").mkdir(parents=True)
    (workspace / "cache" / "features").symlink_to(shared_feature_cache, target_is_directory=True)
    env.dataset_uri = ingest_examples(env.config, workspace)
    try:
        yield env
    finally:
        reap(workspace)
