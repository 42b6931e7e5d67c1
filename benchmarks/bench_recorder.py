"""What the always-on recorder (records.jsonl) costs per training step.

    python benchmarks/bench_recorder.py [--rounds 5] [--threads N]

Runs breedkit.engine.train_epoch, as train.py does, with the recorder writing to a temporary
records.jsonl and with a disabled one, alternating the two so machine noise hits both alike,
in two settings: the head on cached features (steps of about a millisecond: the worst case
for a fixed per-step cost) and the seed's way, the backbone every step (mobilenet_v2 at a
112-pixel crop). Per step the recorder computes one gradient norm per layer group and writes
one JSON line. Prints the median step time of each side and their ratio.
"""

from __future__ import annotations

import argparse
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

sys.path.insert(0, str(SOURCE_DIR))
sys.path.insert(0, str(REPO))  # tests.source_dir.datasets: the channel layout train.py reads


def step_times(source, recorder, epochs: int, optimizer, grad_norms) -> list[float]:
    """Seconds per step of `epochs` epochs (wall time of each epoch / its steps)."""
    import torch
    from breedkit import engine
    from breedkit.distributed import World
    from torch import nn

    world, device = World(), torch.device("cpu")
    scaler = torch.amp.GradScaler("cuda", enabled=False)
    out = []
    for epoch in range(1, epochs + 1):
        source.set_train_mode()
        batches = list(source.train_batches(torch.Generator().manual_seed(epoch)))  # decode outside the timing
        started = time.perf_counter()
        engine.train_epoch(
            source.module, batches, epoch=epoch, criterion=nn.CrossEntropyLoss(), optimizer=optimizer,
            scaler=scaler, device=device, amp=False, grad_norms=grad_norms, recorder=recorder, world=world,
        )  # fmt: skip
        out.append((time.perf_counter() - started) / len(batches))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="alternations of with/without")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads")
    opts = parser.parse_args()

    import torch
    from breedkit import data, engine, feature_cache, models
    from breedkit.distributed import World
    from breedkit.recorder import Recorder
    from breedkit.sources import CachedFeatures, DecodedImages

    from tests.source_dir.datasets import build_channel

    torch.set_num_threads(opts.threads)
    device, world = torch.device("cpu"), World()
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-recorder-") as tmp:
        channel = build_channel(DOGS, Path(tmp) / "data")
        index = data.load_index(channel)
        engine.seed_everything(0)
        model = models.build_model("mobilenet_v2", len(index.classes), str(WEIGHTS))
        trainable = models.freeze(model, "mobilenet_v2", "features.17")  # three gradient groups
        model.to(memory_format=engine.memory_format(device))
        head_names = models.head_parameter_names(model, "mobilenet_v2")
        groups: dict[str, list] = {}
        for name, param in model.named_parameters():
            if name in trainable:
                groups.setdefault(models.param_group_name(name, head_names), []).append(param)
        norms = engine.GradNorms(groups)
        optimizer = torch.optim.AdamW([p for ps in groups.values() for p in ps], lr=1e-4)

        backbone, head = models.split_backbone_head(model, "mobilenet_v2")
        key = feature_cache.CacheKey(index.identity, "mobilenet_v2", "bench", 128, 112)
        features, _ = feature_cache.load_or_extract(
            Path(tmp) / "cache", key, channel, {"train": (index.splits["train"], 1)}, backbone,
            device=device, batch_size=feature_cache.extraction_batch_size(device), num_workers=0,
        )  # fmt: skip
        settings = [
            ("head on cached features", CachedFeatures(head, features, 16, world), 20),
            ("backbone every step (112 px)", DecodedImages(
                model, channel, {"train": index.splits["train"]}, resize=128, crop=112, batch_size=16,
                num_workers=0, freeze_bn_stats=False, device=device, world=world,
            ), 1),
        ]  # fmt: skip
        for name, source, epochs in settings:
            on, off = [], []
            for _ in range(opts.rounds):
                recorder = Recorder(Path(tmp) / "records.jsonl", system_every=10.0)
                recorder.meta(arch="mobilenet_v2")  # starts the periodic system samples, as in train.py
                on += step_times(source, recorder, epochs, optimizer, norms)
                recorder.close()
                off += step_times(source, Recorder(None), epochs, optimizer, norms)
            lines = sum(1 for _ in open(Path(tmp) / "records.jsonl"))
            results.append((name, statistics.median(off), statistics.median(on), lines))
            (Path(tmp) / "records.jsonl").unlink()

    print(f"torch threads: {opts.threads}; median seconds per step over {opts.rounds} alternations")
    print(f"{'setting':<30} {'without':>12} {'with':>12} {'ratio':>7}  records written")
    for name, off, on, lines in results:
        print(f"{name:<30} {off * 1e3:9.3f} ms {on * 1e3:9.3f} ms {on / off:7.3f}  {lines}")


if __name__ == "__main__":
    main()
