"""Local tuning with and without the shared feature cache: the same search, timed end to end.

    .venv/bin/python benchmarks/bench_tuning.py [--trials 8] [--parallel 1] [--epochs 2 6] [--pair]

Every run is `dogbreed tune --json` through the CLI, in a fresh workspace, on the same data
(examples/dogs ingested exactly as tests/backends/local_tuning does), with the same search: configs/hpo.yaml's
ranges, Random sampling with one seed so every run trains the same params, early stopping
off so every run trains every epoch asked. The headline compares two runs that differ only
in train.feature_cache:
- seed's way (false): every trial runs the frozen backbone over every image every epoch;
- ours (true): the first trial extracts backbone features into the workspace's cache under
  a lock, every other trial trains the head on them.
Both use tune.prewarm (trials fork from a worker that imported torch once), so the seed's
way gets our process start-up savings too and the ratio is the cache's alone. Without
--pair, the same two run again with prewarm off (every trial a fresh interpreter), to show
what prewarm is worth on each side.
Reports total wall time, the ratios, the best objective of each, and where a trial's time
goes (train.py vs packing model.tar.gz). Prints one JSON document on stdout; progress on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from statistics import mean

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.backends.local_tuning.conftest import WEIGHTS, ingest_examples  # noqa: E402  (the tests' dataset)


def config_for(workspace: Path, cached: bool, prewarm: bool, args: argparse.Namespace) -> dict:
    hpo = yaml.safe_load((REPO / "configs" / "hpo.yaml").read_text())
    ranges = hpo["tune"]["ranges"]
    ranges["epochs"] = {"type": "integer", "min": args.epochs[0], "max": args.epochs[1]}
    return {
        "workspace": str(workspace),
        "model": {"arch": "mobilenet_v2", "weights": str(WEIGHTS), "freeze": "backbone"},
        "train": {"feature_cache": cached},
        "tune": {
            **hpo["tune"],
            "strategy": "Random",
            "early_stopping": "Off",
            "seed": args.seed,
            "max_jobs": args.trials,
            "max_parallel_jobs": args.parallel,
            "ranges": ranges,
            "prewarm": prewarm,
        },
    }


def _stamp(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def trial_times(workspace: Path, name: str) -> list[dict]:
    """Per trial: train.py's run (status.json, 1 s resolution) and the packing after it."""
    out = []
    for job in sorted((workspace / "jobs").glob(f"{name}-t*")):
        status = json.loads((job / "status.json").read_text())
        train = _stamp(status["ended_at"]) - _stamp(status["started_at"])
        pack = (job / "status.json").stat().st_mtime - _stamp(status["ended_at"])
        out.append({"trial": job.name, "train_py_s": round(train, 1), "pack_and_finish_s": round(max(pack, 0.0), 1)})
    return out


def run(way: str, cached: bool, prewarm: bool, root: Path, args: argparse.Namespace) -> dict:
    workspace = root / way / ".dogbreed"
    workspace.mkdir(parents=True)
    config = root / way / "tune.yaml"
    config.write_text(yaml.safe_dump(config_for(workspace, cached, prewarm, args)))
    ingest_examples(config, workspace)
    name = f"bench-{way}"
    print(
        f"[{way}] tuning: {args.trials} trials, {args.parallel} at once, feature_cache={cached}, prewarm={prewarm}",
        file=sys.stderr,
    )
    started = time.monotonic()
    result = subprocess.run(
        [str(Path(sys.executable).parent / "dogbreed"), "tune", "-c", str(config), "--name", name, "--json"],
        cwd=root / way,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.monotonic() - started
    if result.returncode != 0:
        sys.exit(f"[{way}] tune failed: {result.stderr.strip()}")
    answer = json.loads(result.stdout)
    times = trial_times(workspace, name)
    print(f"[{way}] {seconds:.1f} s, best {answer['best']['objective']}", file=sys.stderr)
    return {
        "way": way,
        "feature_cache": cached,
        "prewarm": prewarm,
        "total_s": round(seconds, 1),
        "best": answer["best"],
        "trials": [{k: t[k] for k in ("name", "params", "objective", "test_acc", "status")} for t in answer["trials"]],
        "mean_train_py_s": round(mean(t["train_py_s"] for t in times), 2),
        "mean_pack_s": round(mean(t["pack_and_finish_s"] for t in times), 2),
        "trial_times": times,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--parallel", type=int, default=1, help="1 keeps every run on identical params")
    parser.add_argument("--epochs", type=int, nargs=2, default=(2, 6), metavar=("MIN", "MAX"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pair", action="store_true", help="only the headline pair (both with prewarm)")
    args = parser.parse_args()
    ways = [("seed", False, True), ("ours", True, True)]
    if not args.pair:
        ways += [("seed-no-prewarm", False, False), ("ours-no-prewarm", True, False)]
    with tempfile.TemporaryDirectory(prefix="bench-tuning-") as tmp:
        runs = {way: run(way, cached, prewarm, Path(tmp), args) for way, cached, prewarm in ways}
    seed_way, ours = runs["seed"], runs["ours"]
    params = [[t["params"] for t in r["trials"]] for r in runs.values()]
    report = {
        "search": {
            "trials": args.trials,
            "parallel": args.parallel,
            "epochs": list(args.epochs),
            "strategy": "Random",
            "same_params_in_all": all(p == params[0] for p in params),
            "cpus": os.cpu_count(),
            "load_avg_at_end": os.getloadavg(),
        },
        "runs": runs,
        "speedup": round(seed_way["total_s"] / ours["total_s"], 2),
        "best_objective": {way: r["best"]["objective"] for way, r in runs.items()},
    }
    if not args.pair:
        report["speedup_without_prewarm"] = round(runs["seed-no-prewarm"]["total_s"] / runs["ours-no-prewarm"]["total_s"], 2)
        report["prewarm_gain"] = {
            side: round(runs[f"{side}-no-prewarm"]["total_s"] / runs[side]["total_s"], 2) for side in ("seed", "ours")
        }
    print(json.dumps(report, indent=2))
    print(
        f"seed's way {seed_way['total_s']} s, ours {ours['total_s']} s: {report['speedup']}x; best valid_acc "
        f"{seed_way['best']['objective']} vs {ours['best']['objective']}",
        file=sys.stderr,
    )
    if not args.pair:
        print(
            f"without prewarm: {runs['seed-no-prewarm']['total_s']} s vs {runs['ours-no-prewarm']['total_s']} s: "
            f"{report['speedup_without_prewarm']}x; prewarm gain {report['prewarm_gain']}",
            file=sys.stderr,
        )


if __name__ == "__main__":
    main()
