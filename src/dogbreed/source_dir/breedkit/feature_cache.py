"""Backbone features computed once and shared by every trial that needs the same ones.

With a frozen backbone every epoch would recompute identical features for every image, so
they are computed once per key and the head trains on them. Layout:

    <cache dir>/<arch>-<key[:16]>/
        key.json               what the key is made of (for people)
        .lock                  fcntl.flock: one process extracts, the others wait, then read
        train.view0.pt         {"features": float32 [N, D], "labels": int64 [N], "paths": [...]}
        train.view1.pt ...     augmented views 1..K (--augment-views K), train split only
        valid.view0.pt  test.view0.pt
        valid.mirror.pt ...    the evaluation preset mirrored left-right (--tta flip)

key = sha256 of {format, dataset identity (manifest_sha256, or a hash of the file list),
arch, weights identity ('imagenet', 'none' or the weights file's sha256), preset {resize,
crop}}; split and view index are in the file name. View 0 is the evaluation preset; view
k >= 1 is the training preset with torch's RNG seeded by (k, image position), so a view is
the same pixels in every trial that reads it. Files are written to a temp name and
renamed (atomic.py): a reader never sees a partial file, even without taking the lock.
A file damaged some other way (a copy cut short, garbage) is removed and extracted again.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import pickle
import sys
import time
from collections import deque
from collections.abc import Collection, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn
from torchvision import transforms

from . import engine
from .atomic import atomic_write, atomic_write_json
from .data import ImageDataset, Sample
from .fast_backbone import cpu_inference_backbone
from .presets import eval_geometry, hflip, normalize_batch, to_uint8_hwc, train_geometry
from .progress import Ticker

CACHE_FORMAT = 1
_VIEW_SEED_STRIDE = 1_000_000_007  # view k seeds item i with k * stride + i


@dataclass(frozen=True)
class CacheKey:
    dataset: str
    arch: str
    weights: str
    resize: int
    crop: int

    def digest(self) -> str:
        blob = json.dumps({"format": CACHE_FORMAT, **asdict(self)}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()

    def folder(self, cache_dir: Path) -> Path:
        return Path(cache_dir) / f"{self.arch}-{self.digest()[:16]}"


@dataclass(frozen=True)
class SplitFeatures:
    views: torch.Tensor  # [V, N, D] float32
    labels: torch.Tensor  # [N] int64
    mirror: torch.Tensor | None = None  # [N, D]: view 0 of the mirrored photos (test-time augmentation)

    def to(self, device: torch.device) -> SplitFeatures:
        mirror = None if self.mirror is None else self.mirror.to(device)
        return SplitFeatures(self.views.to(device), self.labels.to(device), mirror)


@dataclass(frozen=True)
class CacheReport:
    folder: Path
    extracted_files: int
    extracted_images: int
    extract_seconds: float


MIRROR = "mirror"  # the view name of the mirrored evaluation preset


def view_file(folder: Path, split: str, view: int | str) -> Path:
    return folder / (f"{split}.{view}.pt" if view == MIRROR else f"{split}.view{view}.pt")


def _view_pixels(view: int | str, key: CacheKey):
    """The Pillow stage of the view's preset, to uint8 pixels; extract() normalises whole
    batches (presets.normalize_batch), which gives the preset's own numbers. View 0: the
    evaluation preset; MIRROR: the same, flipped left-right; k >= 1: the training preset
    (seeded per image by the caller)."""
    if view == MIRROR:
        geometry = transforms.Compose([eval_geometry(key.resize, key.crop), hflip])
    else:
        geometry = eval_geometry(key.resize, key.crop) if view == 0 else train_geometry(key.crop)
    return transforms.Compose([geometry, to_uint8_hwc])


@contextmanager
def _locked(folder: Path):
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _autocast(device: torch.device):
    if device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.float16)
    return torch.autocast(device_type="cpu", enabled=False)


def inference_backbone(backbone: nn.Module, device: torch.device) -> nn.Module:
    """The frozen backbone made fast for extraction, computing the same function. On CPU:
    BatchNorm folded, then one oneDNN Graph (each block's expansion fused with its depthwise
    conv, projections with their shortcut), or failing that conv + activation fused, every
    conv on oneDNN in channels_last and the early layers run image by image (fast_backbone.py).
    TorchScript's optimize_for_inference and torch.compile ran no faster than the latter on
    this project's 2-core CPU, after 5-14 s compiles. Off the CPU (CUDA keeps its float16
    autocast) the eager module runs."""
    if device.type == "cpu":
        return cpu_inference_backbone(backbone, engine.memory_format(device))
    return backbone.eval().to(memory_format=engine.memory_format(device))


def extraction_processes(device: torch.device) -> int:
    """Worker processes for extraction on CPU: one per torch thread this process may use,
    each running the backbone on one thread over its own batches (see extract())."""
    if device.type != "cpu" or not sys.platform.startswith("linux"):
        return 1  # fork is Linux's; elsewhere, and on CUDA, this process does the work
    return torch.get_num_threads()


def _pixel_batch(dataset: torch.utils.data.Dataset, start: int, size: int) -> torch.Tensor:
    """uint8 pixels [B, H, W, 3] of items start .. start + size - 1 (fewer at the end)."""
    return torch.stack([dataset[i][0] for i in range(start, min(start + size, len(dataset)))])


def _features_of(backbone: nn.Module, images: torch.Tensor, batch_size: int) -> torch.Tensor:
    """backbone(images), a last batch shorter than `batch_size` padded to it with copies of its
    last image (their features dropped): the CPU backbone, a TorchScript graph, fuses itself
    anew for each input shape it meets, ~0.5 s in each worker, where the padding costs at most
    a few images' work. Each image's features do not depend on the others in its batch."""
    short = batch_size - len(images)
    if short <= 0 or images.device.type != "cpu":
        return backbone(images)
    padded = torch.cat([images, images[-1:].expand(short, *images.shape[1:])])
    return backbone(padded.contiguous(memory_format=engine.memory_format(images.device)))[: len(images)]


def _backbone_input(pixels: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A pixel batch as the backbone takes it: on `device` (uint8 travels, a quarter of
    float32's bytes), normalised there, in the device's memory format."""
    images = normalize_batch(pixels.to(device, non_blocking=True))
    return images.contiguous(memory_format=engine.memory_format(device))


def _decoded_in_background(dataset: torch.utils.data.Dataset, batch_size: int, ahead: int = 2) -> Iterator[torch.Tensor]:
    """uint8 pixel batches of `dataset` in order, decoded by one thread while the caller runs
    the backbone on the previous batch (Pillow releases the GIL while it decodes and resizes):
    the one-process way, for a process with one torch thread (trials sharing the cores) or
    off Linux. A decoding error is raised here, at its batch. One thread only: per-item seeds
    (augmented views) set torch's global RNG, which a second decoder would race for."""

    starts = range(0, len(dataset), batch_size)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="feature-cache-decode") as pool:
        pending = deque(pool.submit(_pixel_batch, dataset, start, batch_size) for start in starts[:ahead])
        for start in starts[ahead:]:
            batch = pending.popleft().result()
            pending.append(pool.submit(_pixel_batch, dataset, start, batch_size))
            yield batch
        while pending:
            yield pending.popleft().result()


class _BackboneBatches(torch.utils.data.Dataset):
    """Item k: the backbone features of batch k of `dataset`, computed where the item is
    fetched, i.e. in a DataLoader worker process. An error comes back as a value and is
    raised by the caller as itself (a DataLoader would rewrap it with the worker's traceback
    in its message, which the job's one-line failure reason would then carry)."""

    def __init__(self, backbone: nn.Module, dataset: torch.utils.data.Dataset, batch_size: int) -> None:
        self.backbone, self.dataset, self.batch_size = backbone, dataset, batch_size

    def __len__(self) -> int:
        return -(-len(self.dataset) // self.batch_size)

    def __getitem__(self, k: int) -> tuple[int, torch.Tensor | BaseException]:
        try:
            pixels = _pixel_batch(self.dataset, k * self.batch_size, self.batch_size)
            with torch.inference_mode():
                return len(pixels), _features_of(self.backbone, _backbone_input(pixels, torch.device("cpu")), self.batch_size)
        except Exception as exc:  # noqa: BLE001 - handed to the caller, which raises it
            try:
                pickle.loads(pickle.dumps(exc))  # it travels back through a pipe
            except Exception:  # noqa: BLE001 - an exception pickle cannot carry: its text can
                exc = RuntimeError(f"{type(exc).__name__}: {exc}")
            return 0, exc


def _features_in_processes(
    backbone: nn.Module, dataset: torch.utils.data.Dataset, processes: int, batch_size: int, on_exit: ExitStack
) -> Iterator[tuple[int, torch.Tensor]]:
    """(images, features) per batch, in order, from `processes` forked workers that each
    decode their batches and run the backbone on one thread (DataLoader sets that).

    On 2 cores this ran 1.5x faster than one process running the backbone on 2 threads
    while a thread decoded the next batch (bench_feature_cache.py, 1,200 photos): intra-op threads wait for each other at every
    layer, so any time the decoder (or anything else on the machine) takes a core stalls
    both of them; workers with a thread each never wait on one another. Forked, the workers
    share the backbone and the dataset's file list without copying or pickling them; they
    are stopped when `on_exit` closes, and exit on their own if this process dies."""
    loader = torch.utils.data.DataLoader(
        _BackboneBatches(backbone, dataset, batch_size),
        batch_size=None,
        num_workers=processes,
        multiprocessing_context="fork",
    )
    workers = iter(loader)  # forks now, before extract() starts its progress thread
    # Stopped when extract() returns or raises, not whenever the iterator is collected: an
    # error's traceback keeps it alive. DataLoader has no public close(); this is what its
    # iterator's __del__ calls.
    on_exit.callback(workers._shutdown_workers)

    def results() -> Iterator[tuple[int, torch.Tensor]]:
        for images, features in workers:
            if isinstance(features, BaseException):
                raise features
            yield images, features

    return results()


def _features_in_this_process(
    backbone: nn.Module, dataset: torch.utils.data.Dataset, device: torch.device, batch_size: int, num_workers: int
) -> Iterator[tuple[int, torch.Tensor]]:
    if num_workers > 0:
        loader = torch.utils.data.DataLoader(
            dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers, pin_memory=device.type == "cuda"
        )
        batches: Iterator[torch.Tensor] = (pixels for pixels, _ in loader)
    else:
        batches = _decoded_in_background(dataset, batch_size)
    with torch.inference_mode():
        for pixels in batches:
            images = _backbone_input(pixels, device)
            with _autocast(device):
                yield len(pixels), _features_of(backbone, images, batch_size).float().cpu()


def extract(
    backbone: nn.Module,
    dataset: torch.utils.data.Dataset,
    *,
    device: torch.device,
    batch_size: int,
    num_workers: int,
    processes: int = 1,
    description: str = "feature cache",
    progress_interval_s: float | None = None,
    say=None,
) -> torch.Tensor:
    """Backbone features of every item of `dataset`, in order, float32 on the CPU.
    `dataset` yields uint8 [H, W, 3] pixels (_view_pixels); `backbone` should come from
    inference_backbone(). With `processes` > 1 (CPU only: extraction_processes()), that many
    worker processes each decode and run the backbone on their own batches of `batch_size`
    / `processes` images. Otherwise this process runs the backbone and decoding overlaps it:
    in `num_workers` DataLoader processes, or with 0 in one thread. A progress line goes to
    stderr at least every progress_interval_s (default DOGBREED_PROGRESS_SECONDS or 30 s)."""
    chunks = []
    with ExitStack() as on_exit:
        if processes > 1 and device.type == "cpu" and len(dataset) > batch_size:
            per_worker = max(1, batch_size // processes)
            batches = _features_in_processes(backbone, dataset, processes, per_worker, on_exit)
        else:
            batches = _features_in_this_process(backbone, dataset, device, batch_size, num_workers)
        with Ticker(description, total=len(dataset), interval_s=progress_interval_s, say=say) as advance:
            for images, features in batches:
                chunks.append(features)
                advance(images)
    return torch.cat(chunks)


def _load_view(path: Path, samples: list[Sample]) -> tuple[torch.Tensor, torch.Tensor]:
    blob = torch.load(path, map_location="cpu", weights_only=True)
    if blob["paths"] != [s.path for s in samples]:
        raise RuntimeError(f"{path} was computed for other files than this dataset's; delete {path.parent}")
    features, labels = blob["features"], blob["labels"]
    if not (features.dim() == 2 and len(features) == len(samples) == len(labels)):
        raise RuntimeError(f"{path} holds {tuple(features.shape)} features for {len(samples)} images")
    return features, labels


def _readable_view(path: Path, samples: list[Sample]) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The view's features, or None when there is no file. A file that cannot be read as one
    (cut short by a full disk or a kill outside our atomic writes, garbage, another dataset's
    files) is removed with a note, so it is extracted again instead of failing every trial
    that shares the cache."""
    if not path.is_file():
        return None
    try:
        return _load_view(path, samples)
    except Exception as exc:  # noqa: BLE001 - whatever torch.load or the blob's shape raises
        why = " ".join(f"{type(exc).__name__}: {exc}".split())[:200]
        print(f"feature cache: {path} is unreadable ({why}); extracting it again", file=sys.stderr, flush=True)
        path.unlink(missing_ok=True)
        return None


def extraction_batch_size(device: torch.device) -> int:
    """Images per step of extraction. On CPU 4 per thread, i.e. 4 per backbone call in each
    worker process (extract()): on this project's 2-core CPU, over 1,200 photos, 2 workers
    ran 133 images/s at 2 per call, 143-145 at 3 to 6 and 104 at 8 (a cliff, the same in
    every round: the early layers' activations outgrew the cache). Since those layers run
    image by image (fast_backbone.ImageByImage) the cliff is gone, but one thread still ran
    the backbone faster at 4 per call than at 8 (95 against 86-89 images/s)."""
    if device.type == "cpu":
        return 4 * torch.get_num_threads()
    return 64


def _view_name(split: str, view: int | str) -> str:
    return f"{split}.{view if view == MIRROR else f'view{view}'}"


def _extract_views(
    folder: Path,
    key: CacheKey,
    root: Path,
    splits: dict[str, tuple[list[Sample], int]],
    views: list[tuple[str, int | str]],
    fast_backbone: nn.Module,
    **how,
) -> int:
    """Extract the (split, view) files `views` in one pass and write each; the images done.
    One pass, not one per file: workers start and warm up once, and the small valid and test
    splits fill whole batches instead of each ending on a short one."""
    datasets = []
    for split, view in views:
        item_seed = view * _VIEW_SEED_STRIDE if isinstance(view, int) and view > 0 else None
        datasets.append(ImageDataset(root, splits[split][0], _view_pixels(view, key), item_seed))
    description = f"feature cache: extracting {', '.join(_view_name(s, v) for s, v in views)}"
    features = extract(fast_backbone, torch.utils.data.ConcatDataset(datasets), description=description, **how)
    start = 0
    for (split, view), dataset in zip(views, datasets, strict=True):
        samples = dataset.samples
        labels = torch.tensor([s.index for s in samples], dtype=torch.int64)
        blob = {"features": features[start : start + len(samples)].clone(), "labels": labels, "paths": [s.path for s in samples]}
        atomic_write(view_file(folder, split, view), lambda handle, blob=blob: torch.save(blob, handle))
        start += len(samples)
    return start


def load_or_extract(
    cache_dir: Path,
    key: CacheKey,
    root: Path,
    splits: dict[str, tuple[list[Sample], int]],
    backbone: nn.Module,
    *,
    device: torch.device,
    batch_size: int,
    num_workers: int,
    processes: int = 1,
    mirrored: Collection[str] = (),
) -> tuple[dict[str, SplitFeatures], CacheReport]:
    """Features of each split ({split: (samples, number of views)}), from the cache or
    computed now (extract(): `processes`, `num_workers`) and added to it; the `mirrored`
    splits also get their mirror view.
    Safe with several processes sharing `cache_dir`."""
    folder = key.folder(cache_dir)
    wanted: list[tuple[str, int | str]] = [(split, view) for split, (_, views) in splits.items() for view in range(views)]
    wanted += [(split, MIRROR) for split in splits if split in mirrored]
    extracted_files = extracted_images = 0
    started = time.perf_counter()

    def load(split: str, view: int | str) -> tuple[torch.Tensor, torch.Tensor] | None:
        return _readable_view(view_file(folder, split, view), splits[split][0])

    loaded = {(split, view): load(split, view) for split, view in wanted}
    if any(found is None for found in loaded.values()):
        with _locked(folder):
            atomic_write_json(folder / "key.json", {"format": CACHE_FORMAT, **asdict(key)})
            # Another trial may have made some while we waited for the lock.
            loaded = {item: found or load(*item) for item, found in loaded.items()}
            missing = [item for item, found in loaded.items() if found is None]
            if missing:
                extracted_images = _extract_views(
                    folder, key, root, splits, missing, inference_backbone(backbone, device),
                    device=device, batch_size=batch_size, num_workers=num_workers, processes=processes,
                )  # fmt: skip
                extracted_files = len(missing)
                for split, view in missing:
                    loaded[(split, view)] = _load_view(view_file(folder, split, view), splits[split][0])
    out = {}
    for split, (_, views) in splits.items():
        plain = [loaded[(split, v)] for v in range(views)]
        mirror = loaded[(split, MIRROR)][0] if split in mirrored else None
        out[split] = SplitFeatures(torch.stack([f for f, _ in plain]), plain[0][1], mirror)
    report = CacheReport(folder, extracted_files, extracted_images, time.perf_counter() - started)
    what = f"extracted {extracted_images} images" if extracted_files else "hit"
    print(f"feature cache: {what} ({folder}, {report.extract_seconds:.1f}s)", file=sys.stderr, flush=True)
    return out, report
