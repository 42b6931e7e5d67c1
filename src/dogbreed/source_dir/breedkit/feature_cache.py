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
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import sys
import time
from collections import deque
from collections.abc import Collection, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn
from torchvision import transforms

from . import engine
from .atomic import atomic_write, atomic_write_json
from .data import ImageDataset, Sample
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
    """The frozen backbone made fast for extraction, computing the same function.

    On CPU, torch.fx folds each BatchNorm into the convolution before it (a copy: the model's
    own parameters are untouched), and the convolutions run channels_last on oneDNN. That ran
    as fast as TorchScript's optimize_for_inference on this project's 2-core CPU, which took
    5-6 s to compile under load against under 1 s here, a cost every extraction pays
    (benchmarks/bench_feature_cache.py); features equal within ~1e-5. Where fx cannot trace an
    architecture, or off the CPU (CUDA keeps its float16 autocast), the eager module runs."""
    backbone = backbone.eval()
    if device.type == "cpu":
        try:
            from torch.fx.experimental.optimization import fuse

            backbone = fuse(backbone)
        except Exception as exc:  # noqa: BLE001 - any failure just means the unfused module
            print(f"feature cache: unfused backbone ({type(exc).__name__}: {exc})"[:300], file=sys.stderr, flush=True)
    return backbone.to(memory_format=engine.memory_format(device))


def _decoded_in_background(dataset: ImageDataset, batch_size: int, ahead: int = 2) -> Iterator[torch.Tensor]:
    """uint8 pixel batches of `dataset` in order, decoded by one thread while the caller runs
    the backbone on the previous batch (Pillow releases the GIL while it decodes and resizes).
    On 2 shared cores it beat decoding in line, and matched worker processes within the
    noise without their start-up. A decoding error
    is raised here, at its batch. One thread only: per-item seeds (augmented views) set
    torch's global RNG, which a second decoder would race for."""

    def decode(start: int) -> torch.Tensor:
        return torch.stack([dataset[i][0] for i in range(start, min(start + batch_size, len(dataset)))])

    starts = range(0, len(dataset), batch_size)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="feature-cache-decode") as pool:
        pending = deque(pool.submit(decode, start) for start in starts[:ahead])
        for start in starts[ahead:]:
            batch = pending.popleft().result()
            pending.append(pool.submit(decode, start))
            yield batch
        while pending:
            yield pending.popleft().result()


def extract(
    backbone: nn.Module,
    dataset: ImageDataset,
    *,
    device: torch.device,
    batch_size: int,
    num_workers: int,
    description: str = "feature cache",
    progress_interval_s: float | None = None,
    say=None,
) -> torch.Tensor:
    """Backbone features of every item of `dataset`, in order, float32 on the CPU.
    `dataset` yields uint8 [H, W, 3] pixels (_view_pixels); `backbone` should come from
    inference_backbone(). Decoding overlaps the backbone: in `num_workers` DataLoader
    processes, or with 0 in one thread of this process. A progress line goes to stderr at
    least every progress_interval_s (default DOGBREED_PROGRESS_SECONDS or 30 s)."""
    if num_workers > 0:
        loader = torch.utils.data.DataLoader(
            dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers, pin_memory=device.type == "cuda"
        )
        batches: Iterator[torch.Tensor] = (pixels for pixels, _ in loader)
    else:
        batches = _decoded_in_background(dataset, batch_size)
    chunks = []
    with Ticker(description, total=len(dataset), interval_s=progress_interval_s, say=say) as advance, torch.inference_mode():
        for pixels in batches:
            # uint8 travels to the device (a quarter of float32's bytes); normalised there.
            images = normalize_batch(pixels.to(device, non_blocking=True))
            images = images.contiguous(memory_format=engine.memory_format(device))
            with _autocast(device):
                chunks.append(backbone(images).float().cpu())
            advance(len(pixels))
    return torch.cat(chunks)  # outside inference mode: an ordinary tensor


def _load_view(path: Path, samples: list[Sample]) -> tuple[torch.Tensor, torch.Tensor]:
    blob = torch.load(path, map_location="cpu", weights_only=True)
    if blob["paths"] != [s.path for s in samples]:
        raise RuntimeError(f"{path} was computed for other files than this dataset's; delete {path.parent}")
    return blob["features"], blob["labels"]


def extraction_batch_size(device: torch.device) -> int:
    """Images per backbone call. On CPU 8 per thread: 8 to 32 per thread measured alike on
    this project's 2-core CPU (bench_feature_cache.py), and a batch's decoding overlaps the
    previous batch's forward pass, so smaller batches start the overlap sooner."""
    if device.type == "cpu":
        return 8 * torch.get_num_threads()
    return 64


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
    mirrored: Collection[str] = (),
) -> tuple[dict[str, SplitFeatures], CacheReport]:
    """Features of each split ({split: (samples, number of views)}), from the cache or
    computed now and added to it; the `mirrored` splits also get their mirror view.
    Safe with several processes sharing `cache_dir`."""
    folder = key.folder(cache_dir)
    wanted: list[tuple[str, int | str]] = [(split, view) for split, (_, views) in splits.items() for view in range(views)]
    wanted += [(split, MIRROR) for split in splits if split in mirrored]
    extracted_files = extracted_images = 0
    started = time.perf_counter()
    if not all(view_file(folder, s, v).is_file() for s, v in wanted):
        fast_backbone = None  # compiled on first need: another trial may have done the work
        with _locked(folder):
            atomic_write_json(folder / "key.json", {"format": CACHE_FORMAT, **asdict(key)})
            for split, view in wanted:
                path = view_file(folder, split, view)
                if path.is_file():
                    continue  # another trial made it while we waited for the lock
                samples = splits[split][0]
                item_seed = view * _VIEW_SEED_STRIDE if isinstance(view, int) and view > 0 else None
                dataset = ImageDataset(root, samples, _view_pixels(view, key), item_seed)
                if fast_backbone is None:
                    fast_backbone = inference_backbone(backbone, device)
                features = extract(
                    fast_backbone,
                    dataset,
                    device=device,
                    batch_size=batch_size,
                    num_workers=num_workers,
                    description=f"feature cache: extracting {split}.{view if view == MIRROR else f'view{view}'}",
                )
                labels = torch.tensor([s.index for s in samples], dtype=torch.int64)
                blob = {"features": features, "labels": labels, "paths": [s.path for s in samples]}
                atomic_write(path, lambda handle, blob=blob: torch.save(blob, handle))
                extracted_files += 1
                extracted_images += len(samples)
    out = {}
    for split, (samples, views) in splits.items():
        loaded = [_load_view(view_file(folder, split, v), samples) for v in range(views)]
        mirror = _load_view(view_file(folder, split, MIRROR), samples)[0] if split in mirrored else None
        out[split] = SplitFeatures(torch.stack([f for f, _ in loaded]), loaded[0][1], mirror)
    report = CacheReport(folder, extracted_files, extracted_images, time.perf_counter() - started)
    what = f"extracted {extracted_images} images" if extracted_files else "hit"
    print(f"feature cache: {what} ({folder}, {report.extract_seconds:.1f}s)", file=sys.stderr, flush=True)
    return out, report
