"""`dogbreed ingest`: a folder, archive or URL of dog photos -> a checked, split dataset with
a manifest, stored in a local folder or on S3, and recorded in the ledger.

    source -> local folder -> layout -> image checks (parallel) -> plan -> manifest -> store

Everything before the store is decided locally; the store then writes only what the
destination lacks and the manifest last.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dogbreed.config import Config, require_path
from dogbreed.data.layout import Layout, detect_layout, list_folder
from dogbreed.data.manifest import MANIFEST_NAME, build_manifest, dump_manifest
from dogbreed.data.plan import Plan, PlannedFile, plan_dataset
from dogbreed.data.sources import LocalSource, resolve_source
from dogbreed.data.stores import DatasetStore
from dogbreed.errors import DogbreedError, UsageError
from dogbreed.progress import NullReporter, Reporter
from dogbreed.workspace import Workspace

if TYPE_CHECKING:
    from dogbreed.backends.base import Backend
    from dogbreed.data.images import ImageCheck, ImageLimits


@dataclass
class IngestResult:
    name: str
    dataset_uri: str
    manifest_sha256: str
    source: str
    layout: str
    num_classes: int
    splits: dict[str, int]
    uploaded: int  # files written to the destination by this run
    skipped: int  # files the destination already held, unchanged
    problems: list[dict[str, str]]
    ignored: int = 0  # OS clutter such as .DS_Store and __MACOSX/ (never photos)
    stale: int = 0  # files in the destination's split folders this dataset does not list, left there
    pruned: int = 0  # such files deleted (--prune)
    bytes_uploaded: int = 0
    duration_s: float = 0.0
    timings_s: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "dataset_uri": self.dataset_uri,
            "manifest_sha256": self.manifest_sha256,
            "num_classes": self.num_classes,
            "splits": self.splits,
            "uploaded": self.uploaded,
            "skipped": self.skipped,
            "problems": self.problems,
            "name": self.name,
            "source": self.source,
            "layout": self.layout,
            "files": sum(self.splits.values()),
            "ignored": self.ignored,
            "stale": self.stale,
            "pruned": self.pruned,
            "bytes_uploaded": self.bytes_uploaded,
            "duration_s": self.duration_s,
            "timings_s": self.timings_s,
        }


def _limits(config: Config) -> ImageLimits:
    """The data.* limits every photo meets, a file or an S3 object alike."""
    from dogbreed.data.images import ImageLimits

    data = config.data
    return ImageLimits(min_side=data.min_side, max_pixels=data.max_pixels, resize=data.resize, max_bytes=data.max_image_bytes)


def check_images(
    source: LocalSource, layout: Layout, config: Config, workspace: Workspace, reporter: Reporter
) -> dict[str, ImageCheck]:
    """Every file's check, on a thread pool: Pillow's decoders and hashlib release the GIL,
    and threads measured faster than processes here (no pickling, no worker start-up)."""
    from dogbreed.data.images import check_image

    data = config.data
    limits = _limits(config)
    resized_dir = workspace.cache("resized") if data.resize else None
    base = source.folder / layout.root if layout.root else source.folder
    paths = [f.path for f in layout.files]
    checks: dict[str, ImageCheck] = {}
    with reporter.task(f"Checking {len(paths)} images", total=len(paths)) as advance:
        with ThreadPoolExecutor(max_workers=data.workers, thread_name_prefix="dogbreed-check") as pool:
            for path, check in zip(paths, pool.map(lambda p: check_image(base / p, limits, resized_dir), paths)):
                checks[path] = check
                advance(1)
    return checks


def _refuse_nested(source: LocalSource, dataset_uri: str) -> None:
    if "://" in dataset_uri and not dataset_uri.startswith("file://"):
        return
    dest = Path(dataset_uri.removeprefix("file://")).expanduser().resolve()
    if dest.is_relative_to(source.folder) or source.folder.is_relative_to(dest):
        raise UsageError(f"--dest {dataset_uri} overlaps the source folder {source.folder}; choose a destination outside it")


def ingest(
    config: Config,
    workspace: Workspace,
    *,
    source: str | None = None,
    dest: str | None = None,
    strict: bool = False,
    prune: bool = False,
    reporter: Reporter | None = None,
    backend: Backend | None = None,
    store: DatasetStore | None = None,
) -> IngestResult:
    """Ingest `source` (default data.source) into `dest` (default data.uri or the backend's
    default) and record it in the ledger as the latest dataset. The backend (default: the
    config's) opens the destination's store unless one is given. `prune`: delete the stale
    files (stores.py) after the new manifest is written."""
    reporter = reporter or NullReporter()
    given = source or config.data.source
    if source is None:
        require_path(config, "data.source")  # names the file (or --set) and key behind a missing one
    if given.startswith("s3://"):
        return ingest_in_place(
            config, workspace, given, dest=dest, strict=strict, reporter=reporter, backend=backend, store=store
        )
    started = time.monotonic()
    timings: dict[str, float] = {}

    def lap(name: str, since: float) -> float:
        now = time.monotonic()
        timings[name] = round(now - since, 3)
        return now

    local = resolve_source(given, workspace.downloads(), config.data, reporter)
    mark = lap("fetch", started)
    # The destination is settled before the slow part, so a wrong --dest fails in a second.
    if store is None:
        if backend is None:
            from dogbreed.backends import get_backend

            backend = get_backend(config, workspace, reporter)
        dataset_uri = dest or config.data.uri or backend.default_dataset_uri(local.name)
        _refuse_nested(local, dataset_uri)
        store = backend.dataset_store(dataset_uri)
    else:
        _refuse_nested(local, store.uri)
    # Missing credentials or bucket are a config error: said before the photos are checked
    # (a minute on dogImages), not after.
    store.check_access()
    files, dirs = list_folder(local.folder)
    layout = detect_layout(files, dirs, where=given)
    reporter.info(f"{given}: {layout.kind} layout, {len(layout.folders)} classes, {len(layout.files)} files")
    checks = check_images(local, layout, config, workspace, reporter)
    mark = lap("check", mark)
    split = config.data.split
    plan: Plan = plan_dataset(layout, checks, split.valid, split.test, config.data.seed, where=given)
    if local.problems:  # archive entries refused while unpacking: problems like any other file's
        plan = replace(plan, problems=sorted([*local.problems, *plan.problems], key=lambda p: p["file"]))
    if plan.problems:
        first = plan.problems[0]
        if strict:
            raise DogbreedError(
                f"{given}: {len(plan.problems)} problem(s) and --strict; first: {first['file']}: {first['problem']} "
                "(fix or remove those files, or run without --strict to exclude them)"
            )
        reporter.warn(f"{len(plan.problems)} problem(s), excluded from the dataset; first: {first['file']}: {first['problem']}")
    manifest = build_manifest(given, layout.kind, plan.labels, [f.manifest_entry() for f in plan.files])

    with store.lock():
        previous = store.read_manifest()
        to_put = store.missing(plan.files, previous, config.data.store_workers)
        mark = lap("compare", mark)
        encoded = dump_manifest(manifest)
        if to_put or previous != manifest:
            if to_put:
                # From the first changed file on, the old manifest would no longer tell the truth.
                store.discard_manifest()
                with reporter.task(f"Storing {len(to_put)} files in {store.uri}", total=len(to_put)) as advance:
                    store.put(to_put, config.data.store_workers, advance)
            store.write_manifest(encoded)
        mark = lap("store", mark)
        # After the manifest: an interrupted prune leaves extra files, never a missing one.
        stale = store.stale({f.path for f in plan.files})
        if stale and prune:
            store.remove(stale)
            reporter.info(f"pruned {len(stale)} stale file(s) from {store.uri}")
        elif stale:
            reporter.warn(
                f"{len(stale)} file(s) in {store.uri}'s split folders are not in this dataset (first: {stale[0]}); "
                "training never reads them; `dogbreed ingest --prune` deletes them"
            )
        lap("prune", mark)

    result = IngestResult(
        name=local.name,
        dataset_uri=store.uri,
        manifest_sha256=manifest["manifest_sha256"],
        source=given,
        layout=layout.kind,
        num_classes=len(plan.labels),
        splits=plan.split_counts(),
        uploaded=len(to_put),
        skipped=len(plan.files) - len(to_put),
        problems=plan.problems,
        ignored=len(layout.ignored),
        stale=0 if prune else len(stale),
        pruned=len(stale) if prune else 0,
        bytes_uploaded=sum(f.size for f in to_put),
        duration_s=round(time.monotonic() - started, 3),
        timings_s=timings,
    )
    _record(workspace, config.backend, result)
    return result


def _record(workspace: Workspace, backend_name: str, result: IngestResult, **extra: Any) -> None:
    """The dataset's ledger row, the same for a copied dataset and one ingested in place."""
    meta = {
        "manifest_sha256": result.manifest_sha256,
        "num_classes": result.num_classes,
        "splits": result.splits,
        "source": result.source,
        "layout": result.layout,
        **extra,
    }
    workspace.ledger.record("dataset", result.name, backend_name, uri=result.dataset_uri, state="created", meta=meta)


# --- photos already on S3 -------------------------------------------------------------------


def _check_objects(
    store: Any, layout: Layout, sizes: dict[str, int], config: Config, reporter: Reporter
) -> dict[str, ImageCheck]:
    """Every photo read from S3 and checked, on a thread pool (GetObject is a round trip)."""
    from dogbreed.data.images import MAX_BYTES_KEY, ImageCheck, check_image_object

    # The files' limits: data.max_image_bytes is checked from the listing, before any GET.
    limits = _limits(config)
    base = f"{layout.root}/" if layout.root else ""

    def check(path: str) -> ImageCheck:
        key = base + path
        try:
            return check_image_object(sizes[key], lambda most: store.read_object(key, most, MAX_BYTES_KEY), key, limits)
        except DogbreedError as exc:
            return ImageCheck(problem=f"unreadable: {exc}")

    paths = [f.path for f in layout.files]
    checks: dict[str, ImageCheck] = {}
    with reporter.task(f"Checking {len(paths)} images on S3", total=len(paths)) as advance:
        with ThreadPoolExecutor(max_workers=config.data.workers, thread_name_prefix="dogbreed-check") as pool:
            for path, result in zip(paths, pool.map(check, paths)):
                checks[path] = result
                advance(1)
    return checks


def _in_place(plan: Plan, layout: Layout) -> list[PlannedFile]:
    """The plan's files under the paths they already have (plan_dataset names them
    <split>/<folder>/<name>, the layout a copy gets): nothing moves on S3."""
    base = f"{layout.root}/" if layout.root else ""
    where = {(f.split if layout.has_splits else None, f.folder, f.name): base + f.path for f in layout.files}
    return [
        replace(
            planned, path=where[(planned.split if layout.has_splits else None, planned.folder, planned.path.split("/", 2)[2])]
        )
        for planned in plan.files
    ]


def ingest_in_place(
    config: Config,
    workspace: Workspace,
    source: str,
    *,
    dest: str | None = None,
    strict: bool = False,
    reporter: Reporter | None = None,
    backend: Backend | None = None,
    store: Any = None,
) -> IngestResult:
    """`ingest s3://bucket/prefix`: photos already on S3 (uploaded the seed's way: dogImages,
    Stanford or class folders) become a dataset where they are. Every photo is read and checked
    (in parallel, in memory), the layout is recognised from the listing, and manifest.json is
    written beside them: the only object written. Nothing is uploaded or moved; data.resize is
    not applied (that would mean writing every photo again)."""
    reporter = reporter or NullReporter()
    started = time.monotonic()
    uri = source.rstrip("/")
    if dest and dest.rstrip("/") != uri:
        raise UsageError(
            f"{source} is ingested in place (its manifest.json is written beside the photos); drop --dest {dest}, "
            "or copy the photos there first"
        )
    if store is None:
        if backend is None:
            from dogbreed.backends import get_backend

            backend = get_backend(config, workspace, reporter)
        store = backend.dataset_store(uri)
    if config.data.resize:
        reporter.warn(f"{uri}: photos ingested in place are used as they are; data.resize={config.data.resize} is not applied")
    sizes = {path: size for path, size in store.listing().items() if path != MANIFEST_NAME}
    layout = detect_layout(list(sizes), where=source)
    reporter.info(f"{source}: {layout.kind} layout, {len(layout.folders)} classes, {len(layout.files)} files, in place")
    checks = _check_objects(store, layout, sizes, config, reporter)
    split = config.data.split
    plan = plan_dataset(layout, checks, split.valid, split.test, config.data.seed, where=source)
    if plan.problems:
        first = plan.problems[0]
        if strict:
            raise DogbreedError(
                f"{source}: {len(plan.problems)} problem(s) and --strict; first: {first['file']}: {first['problem']} "
                "(fix or remove those objects, or run without --strict to exclude them)"
            )
        reporter.warn(f"{len(plan.problems)} problem(s), excluded from the dataset; first: {first['file']}: {first['problem']}")
    files = _in_place(plan, layout)
    manifest = build_manifest(uri, layout.kind, plan.labels, [f.manifest_entry() for f in files])
    with store.lock():
        if store.read_manifest() != manifest:
            store.write_manifest(dump_manifest(manifest))
    result = IngestResult(
        name=uri.rsplit("/", 1)[-1] or uri,
        dataset_uri=uri,
        manifest_sha256=manifest["manifest_sha256"],
        source=source,
        layout=layout.kind,
        num_classes=len(plan.labels),
        splits=plan.split_counts(),
        uploaded=0,
        skipped=len(files),
        problems=plan.problems,
        ignored=len(layout.ignored),
        duration_s=round(time.monotonic() - started, 3),
    )
    _record(workspace, config.backend, result, in_place=True)
    return result
