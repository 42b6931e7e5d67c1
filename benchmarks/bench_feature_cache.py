"""Per-epoch time of training the head with and without the feature cache, and how close
feature extraction comes to this machine's FLOP-bound limit.

    python benchmarks/bench_feature_cache.py [--epochs 2] [--cached-epochs 20] [--threads N] [--rounds 3] [--sample DIR]

Both ways train the same head (mobilenet_v2, vendored ImageNet weights, frozen backbone) on the
same data (examples/dogs: 80 training photos, 8 per breed), with the code train.py runs
(breedkit.sources, breedkit.engine), in this one process and thread count:
  uncached   the seed's way: every step decodes, augments and runs the backbone
  cached     the backbone ran once (timed separately as extraction); steps run the head only
Goal: cached >= 20x faster per epoch. Extraction images/s is set against the FLOP-bound
limit: float32 matmul GFLOP/s measured now with torch, divided by mobilenet_v2's cost at 224
(0.30 G multiply-adds = 0.60 GFLOP per image; torchvision's model card lists "0.3 GFLOPS",
counting a multiply-add as one). "backbone only" runs the backbone on ready tensors, so the
gap between it and extraction is decoding and resizing.

Extraction is timed four ways, over all photos of --sample (default: the 1,200-photo shared
Stanford Dogs sample when it is there; fixed costs hide the rate on 100), each from the
backbone to the features, the order rotating for --rounds rounds in this one run; medians:
  workers       feature_cache.load_or_extract as train.py calls it: one forked worker per
                torch thread, each decoding and running the backbone on one thread
  workers, eager rewrites
                the same with fast_backbone's eager rewrites, its fallback where oneDNN
                Graph cannot run (and the way before it did)
  one process   as workers, with processes=1: this process runs the backbone on all threads
                while one thread decodes the next batch
  before #18    legacy_extract below: TorchScript compile, per-image ToTensor + Normalize,
                decoding in line
The backbone is the one fast_backbone.py makes for the CPU (one oneDNN Graph) in the first and
third; "backbone only" runs it too.
The machine may be shared: the load average is printed with the figures, and the limit is
measured before and after the same way, and again (1 s) just before each timed extraction,
which gives each round its own share of the limit; their median is the steadier figure when
the machine's speed drifts during the run.
"""

from __future__ import annotations

import argparse
import functools
import gc
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SOURCE_DIR = REPO / "src" / "dogbreed" / "source_dir"
WEIGHTS = REPO / "examples" / "weights" / "mobilenet_v2-imagenet1k-from-int8.fp16.pth"
DOGS = REPO / "examples" / "dogs"
# Extraction is timed at a size where per-split start-up does not dominate: the 1,200-photo
# Stanford Dogs sample (120 breeds x 10) beside the project, or the vendored 100 without it.
SHARED_SAMPLE = REPO.parent / "shared" / "data" / "dog-samples" / "stanford-dogs-224"
MACS_PER_IMAGE = 0.30e9  # mobilenet_v2 at 224x224 (torchvision: MobileNet_V2_Weights, _ops=0.301)

sys.path.insert(0, str(SOURCE_DIR))
sys.path.insert(0, str(REPO))  # tests.source_dir.datasets: the channel layout train.py reads


def matmul_gflops(seconds: float = 2.0, n: int = 1024) -> float:
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b  # warm up
    runs, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        a @ b
        runs += 1
    return runs * 2 * n**3 / (time.perf_counter() - started) / 1e9


def backbone_only_images_per_sec(backbone, batch: int, seconds: float = 3.0) -> float:
    import torch
    from breedkit import engine

    x = engine.to_device(torch.randn(batch, 3, 224, 224), torch.device("cpu"))
    with torch.no_grad():
        for _ in range(3):  # a TorchScript graph profiles its first run at a shape and fuses on the next
            backbone(x)
        runs, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            backbone(x)
            runs += 1
    return runs * batch / (time.perf_counter() - started)


def legacy_extract(backbone, channel, samples, batch: int):
    """Extraction as it ran before #18: TorchScript optimize_for_inference (compiled per
    extraction), the preset's ToTensor + Normalize per image, decoding in line, 4 per thread."""
    import warnings

    import torch
    from breedkit import data, engine, presets

    device = torch.device("cpu")
    # As before #18, without the oneDNN Graph fusion the new way switched on process-wide.
    graph_fusion = torch.jit.onednn_fusion_enabled()
    torch.jit.enable_onednn_fusion(False)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fast = torch.jit.optimize_for_inference(torch.jit.script(backbone.eval().to(memory_format=torch.channels_last)))
        dataset = data.ImageDataset(channel, samples, presets.eval_transform(256, 224))
        chunks = []
        with torch.no_grad():
            for images, _ in torch.utils.data.DataLoader(dataset, batch_size=batch, shuffle=False, num_workers=0):
                chunks.append(fast(engine.to_device(images, device)).float())
        return torch.cat(chunks)
    finally:
        torch.jit.enable_onednn_fusion(graph_fusion)


WAYS = ("workers", "workers, eager rewrites", "one process", "before #18")


def limit_images_per_sec(gflops: float) -> float:
    return gflops * 1e9 / (2 * MACS_PER_IMAGE)


def compare_extraction(network, channel, index, key, workdir: Path, rounds: int):
    """{way: images/s per round}, {way: the FLOP-bound limit measured just before each of
    those runs} and the largest feature difference from the way before #18. The order of the
    ways rotates each round, so none always runs on a warmer machine; the limit is measured
    beside each run because a shared machine's speed drifts by 20% and more within minutes."""
    import torch
    from breedkit import feature_cache

    device = torch.device("cpu")
    samples = [s for split in index.splits.values() for s in split]
    wanted = {split: (split_samples, 1) for split, split_samples in index.splits.items()}
    rates, limits, diff = {way: [] for way in WAYS}, {way: [] for way in WAYS}, 0.0
    graph_backbone = feature_cache.cpu_inference_backbone
    for round_ in range(rounds):
        features = {}
        turn = round_ % len(WAYS)
        for way in WAYS[turn:] + WAYS[:turn]:
            limits[way].append(limit_images_per_sec(matmul_gflops(1.0)))
            backbone = network()[1]
            started = time.perf_counter()
            if way == "before #18":
                features[way] = legacy_extract(backbone, channel, samples, 4 * torch.get_num_threads())
                rates[way].append(len(samples) / (time.perf_counter() - started))
                continue
            if way == "workers, eager rewrites":  # what fast_backbone falls back to without oneDNN Graph
                feature_cache.cpu_inference_backbone = functools.partial(graph_backbone, graph_fusion=False)
            try:
                got, report = feature_cache.load_or_extract(
                    workdir / f"cache-{round_}-{way}", key, channel, wanted, backbone, device=device,
                    batch_size=feature_cache.extraction_batch_size(device), num_workers=0,
                    processes=1 if way == "one process" else feature_cache.extraction_processes(device),
                )  # fmt: skip
            finally:
                feature_cache.cpu_inference_backbone = graph_backbone
            rates[way].append(report.extracted_images / report.extract_seconds)
            features[way] = torch.cat([got[split].views[0] for split in index.splits])
        diff = max(diff, *(float((features[w] - features["before #18"]).abs().max()) for w in WAYS[:-1]))
    return rates, limits, diff


def time_epochs(source, epochs: int, optimizer, grad_norms, world, device, recorder) -> float:
    """Mean seconds of a training epoch, the way train.py runs one."""
    import torch
    from breedkit import engine
    from torch import nn

    criterion = nn.CrossEntropyLoss()
    scaler = torch.amp.GradScaler("cuda", enabled=False)
    times = []
    for epoch in range(1, epochs + 1):
        engine.seed_everything(engine.epoch_seed(0, epoch))
        source.set_train_mode()
        started = time.perf_counter()
        engine.train_epoch(
            source.module, source.train_batches(torch.Generator().manual_seed(epoch)), epoch=epoch,
            criterion=criterion, optimizer=optimizer, scaler=scaler, device=device, amp=False,
            grad_norms=grad_norms, recorder=recorder, world=world,
        )  # fmt: skip
        times.append(time.perf_counter() - started)
    return sum(times) / len(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=2, help="uncached epochs to time")
    parser.add_argument("--cached-epochs", type=int, default=20, help="cached epochs to time")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads")
    parser.add_argument("--rounds", type=int, default=3, help="extraction rounds, the three ways rotating")
    parser.add_argument(
        "--sample", type=Path, default=SHARED_SAMPLE if SHARED_SAMPLE.is_dir() else DOGS,
        help="breed folders of 10 photos to extract (default: the shared 1,200-photo sample if present, else examples/dogs)",
    )  # fmt: skip
    opts = parser.parse_args()

    import torch
    from breedkit import data, engine, feature_cache, models
    from breedkit.distributed import World
    from breedkit.recorder import Recorder
    from breedkit.sources import CachedFeatures, DecodedImages

    from tests.source_dir.datasets import build_channel

    gc.freeze()  # as train.py does after its imports, when it runs as a job
    torch.set_num_threads(opts.threads)
    device, world = torch.device("cpu"), World()
    with tempfile.TemporaryDirectory(prefix="bench-feature-cache-") as tmp:
        channel = build_channel(DOGS, Path(tmp) / "data")
        index = data.load_index(channel)
        sample_channel = build_channel(opts.sample, Path(tmp) / "sample")
        sample_index = data.load_index(sample_channel)

        def network(classes: int = len(index.classes)):
            engine.seed_everything(0)
            model = models.build_model("mobilenet_v2", classes, str(WEIGHTS))
            models.freeze(model, "mobilenet_v2", "backbone")
            model.to(memory_format=engine.memory_format(device))  # as train.py does
            backbone, head = models.split_backbone_head(model, "mobilenet_v2")
            params = [p for p in model.parameters() if p.requires_grad]
            optimizer = torch.optim.AdamW(params, lr=1e-3, weight_decay=1e-2)
            return model, backbone, head, optimizer, engine.GradNorms({"head": params})

        load_before = os.getloadavg()
        gflops_before = matmul_gflops()
        weights_id = models.weights_identity(str(WEIGHTS))
        sample_key = feature_cache.CacheKey(sample_index.identity, "mobilenet_v2", weights_id, 256, 224)
        rates, limits, feature_diff = compare_extraction(
            lambda: network(len(sample_index.classes)), sample_channel, sample_index, sample_key, Path(tmp), opts.rounds
        )
        key = feature_cache.CacheKey(index.identity, "mobilenet_v2", weights_id, 256, 224)
        gflops = (gflops_before + matmul_gflops()) / 2
        model, backbone, head, optimizer, norms = network()
        no_records = Recorder(None)
        uncached = DecodedImages(
            model, channel, index.splits, resize=256, crop=224, batch_size=32, num_workers=0,
            freeze_bn_stats=False, device=device, world=world,
        )  # fmt: skip
        uncached_epoch = time_epochs(uncached, opts.epochs, optimizer, norms, world, device, no_records)

        model, backbone, head, optimizer, norms = network()
        wanted = {split: (samples, 1) for split, samples in index.splits.items()}
        features, report = feature_cache.load_or_extract(
            Path(tmp) / "cache",
            key,
            channel,
            wanted,
            backbone,
            device=device,
            batch_size=feature_cache.extraction_batch_size(device),
            num_workers=0,
        )
        cached = CachedFeatures(head, features, batch_size=32, world=world)
        cached_epoch = time_epochs(cached, opts.cached_epochs, optimizer, norms, world, device, no_records)
        fast_backbone = feature_cache.inference_backbone(backbone, device)
        backbone_rate = backbone_only_images_per_sec(fast_backbone, feature_cache.extraction_batch_size(device))

    median = {way: statistics.median(rates[way]) for way in WAYS}
    shares = {way: [100 * r / lim for r, lim in zip(rates[way], limits[way], strict=True)] for way in WAYS}
    photos = sum(len(split) for split in sample_index.splits.values())
    limit = limit_images_per_sec(gflops)
    load_after = os.getloadavg()
    rows = [
        ("torch threads", f"{opts.threads}"),
        (
            "load average 1/5/15 min, before / after",
            f"{'/'.join(f'{v:.1f}' for v in load_before)} / {'/'.join(f'{v:.1f}' for v in load_after)}",
        ),
        ("uncached epoch (80 images, backbone every step)", f"{uncached_epoch * 1e3:10.1f} ms"),
        ("cached epoch (head on cached features)", f"{cached_epoch * 1e3:10.2f} ms"),
        ("per-epoch speed-up (goal >= 20x)", f"{uncached_epoch / cached_epoch:10.0f} x"),
        ("one-off extraction (100 images, all splits)", f"{report.extract_seconds:10.2f} s"),
        (f"extraction sample ({photos:,} photos)", f"{opts.sample}"),
        *((f"extraction rounds, {way} (images/s)", " ".join(f"{r:.1f}" for r in rates[way])) for way in WAYS),
        *((f"extraction, {way}: median", f"{median[way]:10.1f} images/s") for way in WAYS),
        ("extraction speed-up, workers vs one process", f"{median['workers'] / median['one process']:10.2f} x"),
        (
            "speed-up, oneDNN Graph vs eager rewrites (workers)",
            f"{median['workers'] / median['workers, eager rewrites']:10.2f} x"
            f" (per round: {' '.join(f'{g / e:.2f}' for g, e in zip(rates['workers'], rates['workers, eager rewrites']))})",
        ),
        ("extraction speed-up, workers vs before #18", f"{median['workers'] / median['before #18']:10.2f} x"),
        ("largest feature difference vs before #18", f"{feature_diff:10.1e}"),
        ("backbone only, ready tensors, this process", f"{backbone_rate:10.1f} images/s"),
        ("matmul float32, measured now", f"{gflops:10.1f} GFLOP/s"),
        ("FLOP-bound limit (0.60 GFLOP/image)", f"{limit:10.1f} images/s"),
        ("extraction / limit, workers (goal >= 50 %)", f"{100 * median['workers'] / limit:10.0f} %"),
        ("extraction / limit, one process", f"{100 * median['one process'] / limit:10.0f} %"),
        ("extraction / limit, before #18", f"{100 * median['before #18'] / limit:10.0f} %"),
        ("backbone only / limit", f"{100 * backbone_rate / limit:10.0f} %"),
        ("limit measured beside each round (images/s)", " ".join(f"{v:.0f}" for v in limits["workers"])),
        *((f"extraction / limit beside it, {way} (%)", " ".join(f"{v:.1f}" for v in shares[way])) for way in WAYS),
        *((f"extraction / limit beside it, {way}: median", f"{statistics.median(shares[way]):10.1f} %") for way in WAYS),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
