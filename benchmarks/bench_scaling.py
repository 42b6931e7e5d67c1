"""How the cost of a search grows with the data: the seed's way against ours at 100, 400 and
1,200 photos, and the time to a first model at each size.

    .venv/bin/python benchmarks/bench_scaling.py [--sizes 100 400 1200] [--trials 8] [--epochs 1 2]
        [--sample DIR] [--out FILE] [--no-first-model | --no-search]

The photos are the 1,200-photo Stanford Dogs sample (120 breeds x 10, ../shared/data/
dog-samples/stanford-dogs-224; read its SOURCE.md: not part of this repository). A size of N
photos is N/10 whole breeds (10 photos each, so every breed splits 8/1/1 as at full size),
the breeds drawn with --seed; the subsets nest (the 100 are among the 400). Every subset is
ingested with `dogbreed ingest` into a fresh workspace, by bench_accuracy.py's loader.

At each size, in this order, each through the CLI in a workspace of its own:
- first model: `dogbreed ingest` then `dogbreed train` with configs/local.yaml's defaults
  (10 epochs, feature cache on), both timed: what a new user waits for;
- the search, as bench_tuning.py runs it: `dogbreed tune --json`, configs/hpo.yaml's ranges,
  --trials trials one at a time, Random sampling with one seed (every run trains the same
  params), early stopping off, tune.prewarm on both sides, train.feature_cache false (the
  seed's way: the frozen backbone over every image every epoch) against true (ours: the
  first trial extracts the features, the others train the head on them; the cache starts
  cold, so ours pays its extraction).

The epochs range is overridden by --epochs (the same for both sides, and printed): hpo.yaml's
6..16 would cost the seed's way about 2.4 s per epoch per 100 photos on a quiet 2-core
machine, i.e. ~40 min at 1,200 photos alone, and several times that on a shared one (a
seed's-way trial measured 2.6 images/s at load 8, against ~40 quiet). The default, 1..2, the
shortest range a search accepts, keeps the whole run to ~15 min quiet; on this project's
shared machine (load 3-12) 100 and 400 photos took 40 min with their first models, 1,200
photos' search 30 min more (--sizes runs fewer; --out keeps each size's figures as it ends).
Fewer epochs favour the seed's way (ours pays its one extraction whatever the epochs), so
these ratios are a lower bound for hpo.yaml's.

Prints one JSON document on stdout (seconds, ratios, the load average around every run, torch
threads); progress on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(BENCH))

import bench_accuracy  # noqa: E402  (its loader: `dogbreed ingest` of a sample into a workspace)
import bench_tuning  # noqa: E402  (the search's config and per-trial timings)

SAMPLE = bench_accuracy.SHARED / "stanford-dogs-224"
PER_BREED = 10


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def subset(sample: Path, photos: int, seed: int, dest: Path) -> Path:
    """`photos` photos as photos/10 whole breeds of the sample, copied (ingest refuses links)."""
    breeds = sorted(p for p in sample.iterdir() if p.is_dir())
    if photos % PER_BREED or not 0 < photos // PER_BREED <= len(breeds):
        sys.exit(f"--sizes: {photos} is not a multiple of {PER_BREED} up to {len(breeds) * PER_BREED}")
    random.Random(seed).shuffle(breeds)  # one order for every size: the subsets nest
    for breed in breeds[: photos // PER_BREED]:
        files = sorted(breed.glob("*.jpg"))
        if len(files) != PER_BREED:
            sys.exit(f"{breed}: expected {PER_BREED} photos, found {len(files)}; is the sample complete?")
        shutil.copytree(breed, dest / breed.name)
    return dest


def cli(cwd: Path, *args: str) -> tuple[dict, float]:
    """`dogbreed ARGS --json`: its answer and its wall time."""
    exe = Path(sys.executable).parent / "dogbreed"
    started = time.monotonic()
    done = subprocess.run([str(exe), *args, "--json"], cwd=cwd, capture_output=True, text=True, check=False)
    seconds = time.monotonic() - started
    if done.returncode != 0:
        sys.exit(f"dogbreed {' '.join(args)} failed: {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout), seconds


def first_model(photos: Path, root: Path, args: argparse.Namespace) -> dict:
    """ingest -> train with the defaults, in a fresh workspace: a new user's first wait."""
    workspace = root / "first-model" / ".dogbreed"
    common = ["-c", str(REPO / "configs" / "local.yaml"), "--set", f"workspace={workspace}",
              "--set", f"data.seed={args.seed}"]  # fmt: skip
    before = load()
    ingested, ingest_s = cli(root, "ingest", str(photos), *common)
    progress(f"  first model: ingest {ingest_s:.1f} s ({ingested['splits']})")
    job, train_s = cli(root, "train", *common)
    progress(f"  first model: train {train_s:.1f} s, {job['state']}, metrics {job['metrics']}")
    return {
        "ingest_s": round(ingest_s, 1),
        "train_s": round(train_s, 1),
        "total_s": round(ingest_s + train_s, 1),
        "splits": ingested["splits"],
        "metrics": job["metrics"],
        "load_avg_before": before,
        "load_avg_after": load(),
    }


def search(way: str, cached: bool, photos: Path, root: Path, args: argparse.Namespace) -> dict:
    """bench_tuning.py's run, on this size's photos ingested by bench_accuracy.py's loader."""
    workspace = root / way / ".dogbreed"
    workspace.mkdir(parents=True)
    config = root / way / "tune.yaml"
    config.write_text(yaml.safe_dump(bench_tuning.config_for(workspace, cached, True, args)))
    bench_accuracy.ingest(photos, root / way / "data", args.seed, workspace)
    name = f"bench-{way}"
    before = load()
    answer, seconds = cli(root / way, "tune", "-c", str(config), "--name", name)
    times = bench_tuning.trial_times(workspace, name)
    progress(f"  {way}: {seconds:.1f} s, best valid_acc {answer['best']['objective']}")
    return {
        "feature_cache": cached,
        "total_s": round(seconds, 1),
        "best": answer["best"],
        "params": [t["params"] for t in answer["trials"]],
        "trial_train_py_s": [t["train_py_s"] for t in times],
        "load_avg_before": before,
        "load_avg_after": load(),
    }


def torch_threads() -> dict:
    """What a trial's torch gets here (it inherits this environment)."""
    probe = "import torch; print(torch.get_num_threads(), torch.get_num_interop_threads())"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split()
    return {"intra_op": int(out[0]), "inter_op": int(out[1]), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")}


def build_report(sizes: list[dict], args: argparse.Namespace, threads: dict, started: float) -> dict:
    return {
        "search": {
            "trials": args.trials,
            "parallel": 1,
            "epochs": list(args.epochs),
            "strategy": "Random",
            "early_stopping": "Off",
            "prewarm": True,
            "seed": args.seed,
        },
        "machine": {"cpus": os.cpu_count(), "torch_threads": threads, "load_avg_at_end": load()},
        "sizes": sizes,
        "wall_s": round(time.monotonic() - started, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 400, 1200], help="photos, multiples of 10")
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--epochs", type=int, nargs=2, default=(1, 2), metavar=("MIN", "MAX"))
    parser.add_argument("--seed", type=int, default=0, help="breeds drawn, split and sampler seed")
    parser.add_argument("--sample", type=Path, default=SAMPLE)
    parser.add_argument("--out", type=Path, help="also write the JSON here, after every size")
    parser.add_argument("--no-first-model", action="store_true", help="only the search pair")
    parser.add_argument("--no-search", action="store_true", help="only the first model")
    args = parser.parse_args()
    args.parallel = 1  # one trial at a time: every run trains the same params, in the same order
    if not args.sample.is_dir():
        sys.exit(f"{args.sample}: no such folder; pass --sample with the Stanford Dogs sample (see this docstring)")
    started = time.monotonic()
    threads = torch_threads()
    progress(
        f"sizes {args.sizes}, {args.trials} trials, epochs {args.epochs[0]}..{args.epochs[1]} on both sides, "
        f"{os.cpu_count()} CPUs, torch threads {threads}, load {load()}"
    )
    sizes = []
    with tempfile.TemporaryDirectory(prefix="bench-scaling-") as tmp:
        for count in args.sizes:
            root = Path(tmp) / str(count)
            photos = subset(args.sample, count, args.seed, root / "photos")
            progress(f"{count} photos ({count // PER_BREED} breeds)")
            row: dict = {"photos": count, "breeds": count // PER_BREED}
            if not args.no_first_model:
                row["first_model"] = first_model(photos, root, args)
            if not args.no_search:
                seed_way = search("seed", False, photos, root, args)
                ours = search("ours", True, photos, root, args)
                row.update(
                    seed_s=seed_way["total_s"],
                    ours_s=ours["total_s"],
                    speedup=round(seed_way["total_s"] / ours["total_s"], 2),
                    same_params=seed_way["params"] == ours["params"],
                    runs={"seed": seed_way, "ours": ours},
                )
                progress(f"{count} photos: seed's way {row['seed_s']} s, ours {row['ours_s']} s: {row['speedup']}x")
            sizes.append(row)
            if args.out:  # what is measured so far survives a run cut short
                args.out.write_text(json.dumps(build_report(sizes, args, threads, started), indent=2))
            shutil.rmtree(root, ignore_errors=True)
    report = build_report(sizes, args, threads, started)
    print(json.dumps(report, indent=2))
    for row in sizes:
        search_s = f"seed's way {row['seed_s']} s, ours {row['ours_s']} s, {row['speedup']}x" if "speedup" in row else ""
        first = f"first model {row['first_model']['total_s']} s" if "first_model" in row else ""
        progress(f"{row['photos']:5d} photos: {'; '.join(x for x in (search_s, first) if x)}")


if __name__ == "__main__":
    main()
