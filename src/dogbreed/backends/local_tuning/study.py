"""A tuning job on disk: its setup, its Optuna study, and the lock workers ask under.

<workspace>/tuning/<name>/
    setup.json     what every worker needs: the config, the dataset, the trial budget
    journal.log    the Optuna study (JournalStorage, file backend)
    ask.lock       held while a worker counts trials and asks for the next one
    job.lock       held by the `tune` that runs the job (dogbreed.job_lock): one at a time
    workers/       one pid file per worker process (pool.py)
    worker-N.log   what worker N printed

Optuna's SQLite storage is not safe with several processes writing; its journal file
backend appends under a file lock and is (optuna.readthedocs.io, JournalStorage).
"""

from __future__ import annotations

import fcntl
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from dogbreed.atomic_files import write_text
from dogbreed.backends.local_tuning.strategy import make_pruner, make_sampler
from dogbreed.config import Config
from dogbreed.errors import DogbreedError
from dogbreed.job_lock import JobLock
from dogbreed.tuning.space import SearchParam, build_space, trial_budget
from dogbreed.workspace import Workspace

SETUP_FILE = "setup.json"
JOURNAL_FILE = "journal.log"
LOCK_FILE = "ask.lock"
JOB_LOCK_FILE = "job.lock"


@dataclass(frozen=True)
class TuningSetup:
    """What all trials of one tuning job share."""

    name: str
    config: Config
    dataset_uri: str
    manifest_sha256: str | None
    fingerprint: str

    @cached_property
    def space(self) -> list[SearchParam]:
        return build_space(self.config)

    @property
    def budget(self) -> int:
        return trial_budget(self.config.tune, self.space)

    @property
    def workspace(self) -> Workspace:
        return Workspace(Path(self.config.workspace).resolve())

    @property
    def folder(self) -> Path:
        return self.workspace.tuning(self.name)

    @property
    def metric(self) -> str:
        return self.config.tune.objective.metric

    @property
    def maximize(self) -> bool:
        return self.config.tune.objective.type == "Maximize"

    def job_lock(self) -> JobLock:
        """Held by the one `tune` process that runs this job: it settles what a killed run
        left, starts workers and follows them; a second `tune` of the job is refused."""
        return JobLock(self.folder / JOB_LOCK_FILE, f"tuning job {self.name}")

    def save(self) -> Path:
        path = self.folder / SETUP_FILE
        blob = {
            "name": self.name,
            "config": self.config.model_dump(mode="json"),
            "dataset_uri": self.dataset_uri,
            "manifest_sha256": self.manifest_sha256,
            "fingerprint": self.fingerprint,
        }
        write_text(path, json.dumps(blob, indent=2))
        return path

    @classmethod
    def load(cls, folder: Path) -> TuningSetup:
        blob = json.loads((folder / SETUP_FILE).read_text())
        return cls(
            name=blob["name"],
            config=Config.model_validate(blob["config"]),
            dataset_uri=blob["dataset_uri"],
            manifest_sha256=blob["manifest_sha256"],
            fingerprint=blob["fingerprint"],
        )


def check_journal(name: str, folder: Path, repair: bool) -> str | None:
    """The study's journal, line by line, before Optuna reads it: Optuna raises a bare
    JSONDecodeError or UnicodeDecodeError on a damaged one, and appends after a record cut
    short, which makes that record unreadable for good. A record cut short at the very end
    (a write a kill or a full disk interrupted) is dropped when `repair` (no worker writes
    now); damage before the end cannot be undone: the study is lost, the trials' jobs are not."""
    path = folder / JOURNAL_FILE
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    lines = data.split(b"\n")
    kept = 0
    for number, line in enumerate(lines[:-1], start=1):
        try:
            record = json.loads(line)
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError both
            why = "not UTF-8" if isinstance(exc, UnicodeDecodeError) else "not JSON"
        else:
            if isinstance(record, dict) and "op_code" in record:
                kept += len(line) + 1
                continue
            why = "not an Optuna journal record"
        raise DogbreedError(
            f"tuning job {name} cannot be read: its study journal {path} is damaged at line {number} of "
            f"{len(lines) - 1} ({why}); give another --name to search again (this job's trials stay under jobs/)"
        )
    if not lines[-1] or not repair:
        return None
    with open(path, "r+b") as handle:
        handle.truncate(kept)
    return f"{path}: dropped a journal record cut short at its end ({len(lines[-1])} bytes; an interrupted write)"


def storage(folder: Path) -> Any:
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    return JournalStorage(JournalFileBackend(str(folder / JOURNAL_FILE)))


def open_study(setup: TuningSetup, worker: int = 0) -> Any:
    """The job's study, created on first use; each process opens its own handle."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(
        storage=storage(setup.folder),
        study_name=setup.name,
        sampler=make_sampler(setup.config.tune, setup.space, worker),
        pruner=make_pruner(setup.config.tune, setup.config.train.epochs),
        direction="maximize" if setup.maximize else "minimize",
        load_if_exists=True,
    )


def trial_handle(study: Any, number: int) -> Any:
    """A writable optuna.Trial for a trial another (maybe dead) process asked for."""
    import optuna

    store = study._storage  # the study's own storage object; Optuna has no public getter
    trial_id = store.get_trial_id_from_study_id_trial_number(store.get_study_id_from_name(study.study_name), number)
    return optuna.trial.Trial(study, trial_id)


@contextmanager
def ask_lock(folder: Path) -> Iterator[None]:
    """One worker at a time counts the trials and asks for the next, so max_jobs holds exactly."""
    with open(folder / LOCK_FILE, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
