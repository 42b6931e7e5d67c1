"""Where an ingested dataset is stored: a local folder or an S3 prefix, behind one protocol.

Both stores skip what the destination already holds, judged by the previous manifest and
by what is really there (local: size, then sha256 when the manifest cannot vouch for it;
S3: the listing's size, then the sha256 kept in each object's metadata). Before the first
file changes, the old manifest is removed, and the new one is written last: a manifest
present at the destination always describes the files beside it.

Files under the split folders that the new manifest does not list (an earlier ingest of
another source, a photo since excluded, a temp file of a killed copy) are `stale`: reported,
and deleted with `ingest --prune`. They never reach training, which reads the manifest, but
SageMaker's File mode downloads the whole prefix, and a scan without manifest would see them.
Only the split folders are ever pruned: anything else at the destination is not ours.

The S3 store (s3store.py) is built by a backend with the AWS gateway it holds
(backends/datasets.py); this module knows nothing of it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from dogbreed.atomic_files import replacing, write_bytes
from dogbreed.data.download import file_sha256
from dogbreed.data.manifest import MANIFEST_NAME, parse_manifest
from dogbreed.data.plan import PlannedFile
from dogbreed.errors import DogbreedError
from dogbreed.job_lock import lock_now

Advance = Callable[[float], None]
SPLITS = ("train", "valid", "test")


class DatasetStore(Protocol):
    uri: str

    def check_access(self) -> None: ...

    def read_manifest(self) -> dict[str, Any] | None: ...

    def missing(self, files: Sequence[PlannedFile], previous: Mapping[str, Any] | None, workers: int) -> list[PlannedFile]: ...

    def discard_manifest(self) -> None: ...

    def put(self, files: Sequence[PlannedFile], workers: int, advance: Advance) -> None: ...

    def write_manifest(self, data: bytes) -> None: ...

    def stale(self, keep: set[str]) -> list[str]: ...

    def remove(self, paths: Sequence[str]) -> None: ...

    def lock(self) -> Any: ...


def flock_holders(path: Path) -> list[int]:
    """Pids holding a flock on `path`, from /proc/locks (Linux; elsewhere none are named)."""
    try:
        stat = os.stat(path)
        table = Path("/proc/locks").read_text()
    except OSError:
        return []
    device = f"{os.major(stat.st_dev):02x}:{os.minor(stat.st_dev):02x}:{stat.st_ino}"
    pids = []
    for line in table.splitlines():
        fields = line.split()
        if "FLOCK" in fields and "->" not in fields and device in fields:
            pids.append(int(fields[fields.index(device) - 1]))
    return sorted(set(pids))


def stale_paths(present: Iterable[str], keep: set[str]) -> list[str]:
    """Paths under the split folders that `keep` (the new manifest's files) does not list."""
    return sorted(p for p in present if p.split("/", 1)[0] in SPLITS and "/" in p and p not in keep)


def vouched(previous: Mapping[str, Any] | None) -> dict[str, tuple[int, str]]:
    """{path: (size, sha256)} that the previous manifest says are stored."""
    if not previous:
        return {}
    return {entry["path"]: (entry["size"], entry["sha256"]) for entry in previous.get("files", [])}


def run_parallel(work: Callable[[PlannedFile], Any], files: Iterable[PlannedFile], workers: int, what: str) -> list[Any]:
    """work(file) for every file on a thread pool, results in order; the first failure
    cancels what has not started (also on Ctrl-C) and is raised as one DogbreedError."""
    files = list(files)
    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="dogbreed-store")
    try:
        futures = [pool.submit(work, planned) for planned in files]
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        for future, planned in zip(futures, files):
            if future in done and future.exception() is not None:
                error = future.exception()
                if isinstance(error, DogbreedError):
                    raise error
                raise DogbreedError(
                    f"{what} {planned.path} failed: {error}; run the same command again to finish the rest"
                ) from error
        return [future.result() for future in futures]
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


class LocalStore:
    """A dataset folder on this machine; every file is written whole (temp file + rename)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.uri = str(root)

    def check_access(self) -> None:
        """Nothing to ask up front: a folder that cannot be written fails at the lock, in a second."""

    def read_manifest(self) -> dict[str, Any] | None:
        path = self.root / MANIFEST_NAME
        try:
            return parse_manifest(path.read_bytes(), str(path))
        except FileNotFoundError:
            return None
        except ValueError:
            return None  # unreadable or tampered: trust nothing, check every file

    def missing(self, files: Sequence[PlannedFile], previous: Mapping[str, Any] | None, workers: int) -> list[PlannedFile]:
        known = vouched(previous)
        to_hash, out = [], []
        for planned in files:
            try:
                size = (self.root / planned.path).stat().st_size
            except OSError:
                out.append(planned)
                continue
            if size != planned.size:
                out.append(planned)
            elif known.get(planned.path) != (planned.size, planned.sha256):
                to_hash.append(planned)
        same = run_parallel(lambda p: file_sha256(self.root / p.path) == p.sha256, to_hash, workers, "checking")
        out += [planned for planned, equal in zip(to_hash, same) if not equal]
        return sorted(out, key=lambda p: p.path)

    def discard_manifest(self) -> None:
        (self.root / MANIFEST_NAME).unlink(missing_ok=True)

    def put(self, files: Sequence[PlannedFile], workers: int, advance: Advance) -> None:
        def copy(planned: PlannedFile) -> None:
            with replacing(self.root / planned.path) as tmp:
                shutil.copyfile(planned.source, tmp)
            advance(1)

        run_parallel(copy, files, workers, "copying")

    def write_manifest(self, data: bytes) -> None:
        write_bytes(self.root / MANIFEST_NAME, data)

    def stale(self, keep: set[str]) -> list[str]:
        present = (
            path.relative_to(self.root).as_posix()
            for split in SPLITS
            for path in (self.root / split).rglob("*")
            if path.is_file() or path.is_symlink()
        )
        return stale_paths(present, keep)

    def remove(self, paths: Sequence[str]) -> None:
        for path in paths:
            (self.root / path).unlink(missing_ok=True)
        # Class folders the removal emptied (deepest first); a folder with anything left stays.
        for folder in sorted({(self.root / p).parent for p in paths}, key=lambda f: len(f.parts), reverse=True):
            if folder != self.root and folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()

    def _busy(self, fd: int) -> str:
        """Who holds the folder: an ingest (exclusive), or training jobs reading it (shared,
        breedkit/data.py's hold_dataset), named by pid from the kernel's lock table."""
        import fcntl

        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return f"another ingest is writing to {self.root}; wait for it to finish, or choose another --dest"
        fcntl.flock(fd, fcntl.LOCK_UN)
        pids = flock_holders(self.root)
        who = f" (pid {', '.join(map(str, pids))})" if pids else ""
        return (
            f"{self.root} is being read by a training job{who}; wait for it to end (dogbreed status), "
            "or ingest into another --dest"
        )

    @contextmanager
    def lock(self) -> Iterator[None]:
        """One ingest at a time per folder: two would interleave files and manifests."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            # The folder itself is locked, so the dataset holds no lock file of ours.
            fd = os.open(self.root, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        except OSError as exc:
            raise DogbreedError(
                f"{self.root}: cannot create or open the destination folder ({exc.strerror or exc}); "
                "choose a --dest (or data.uri) you can write to"
            ) from None
        try:
            if not lock_now(fd):
                raise DogbreedError(self._busy(fd))
            yield
        finally:
            os.close(fd)  # releases the lock
