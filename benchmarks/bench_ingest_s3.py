"""How fast `dogbreed ingest` stores many small photos on S3, against the one-at-a-time loop.

Runs a real moto_server on 127.0.0.1 (started and stopped here), so every request goes
through boto3's full HTTP path; absolute numbers are the laptop's and moto's, the ratio is
the point. Twice: straight to moto, where both sides are bound by moto's CPU (no network
time at all), and through dogbreed.testing's latency proxy, which holds every request
--latency-ms (default 20) before moto sees it: real S3 answers a small PUT after tens of
milliseconds of network time, which is what the sequential loop waits through file by file
and what concurrent uploads overlap.
Usage: python benchmarks/bench_ingest_s3.py [--workers N [N ...]] [--latency-ms 20] [--proxied-only]
       [--no-checks] [--sample DIR]

  baseline: for each file, s3.upload_file(...)   (the seed's way; one file at a time, each PUT
            sent with `Expect: 100-continue`, so two round trips)
  ours:     dogbreed.workflows.ingest.ingest(...) to s3:// (checks every image too), with
            data.store_workers = each --workers value (default 32) uploads at once, one
            round trip each

Both share the 2 cores with moto and the proxy: once concurrency hides the latency, the
client's and moto's CPU time per request is the limit, so a loaded machine shows less.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

from dogbreed.testing import latency_proxy, moto_server

REPO = Path(__file__).resolve().parents[1]
SHARED_SAMPLE = REPO.parent / "shared" / "data" / "dog-samples" / "stanford-dogs-224"
BUCKET = "dogbreed-bench"


def baseline(sample: Path, client, bucket: str) -> float:
    files = sorted(p for p in sample.rglob("*") if p.is_file())
    started = time.perf_counter()
    for path in files:
        client.upload_file(str(path), bucket, f"baseline/{path.relative_to(sample).as_posix()}")
    return len(files) / (time.perf_counter() - started)


def ours(sample: Path, bucket: str, workspace: Path, workers: int, count: int) -> dict:
    """Our ingest to s3://bucket/ours-W: files/s end to end and in its upload phase alone,
    and the re-ingest that finds everything there."""
    from dogbreed.config import load_config
    from dogbreed.workflows.ingest import ingest
    from dogbreed.workspace import Workspace

    config = load_config(overrides={"workspace": str(workspace), "data.store_workers": workers})
    dest = f"s3://{bucket}/ours-{workers}"
    started = time.perf_counter()
    result = ingest(config, Workspace(workspace), source=str(sample), dest=dest)
    total = time.perf_counter() - started
    assert result.uploaded == count - len(result.problems), result.problems[:3]
    started = time.perf_counter()
    again = ingest(config, Workspace(workspace), source=str(sample), dest=dest)
    rerun = time.perf_counter() - started
    assert again.uploaded == 0
    return {
        "workers": workers,
        "upload": result.uploaded / result.timings_s["store"],
        "total": result.uploaded / total,
        "rerun_s": rerun,
        "skipped": again.skipped,
        "phases": result.timings_s,
    }


def measure(label: str, url: str, sample: Path, work: Path, workers: list[int], count: int) -> None:
    """The sequential loop, then ours at each worker count, against the S3 at `url`."""
    import boto3

    os.environ["AWS_ENDPOINT_URL"] = url  # boto3 reads it for every client made from here on
    bucket = f"{BUCKET}-{label}"
    boto3.client("s3").create_bucket(Bucket=bucket)
    seq = baseline(sample, boto3.client("s3"), bucket)
    print(f"{label}:")
    print(f"  sequential upload_file loop (baseline): {seq:8.0f} files/s")
    for n in workers:
        run = ours(sample, bucket, work / f"ws-{label}-{n}", n, count)
        print(f"  ours, store_workers={n:<3d} upload phase   : {run['upload']:8.0f} files/s  ({run['upload'] / seq:.1f}x)")
        print(f"  ours, store_workers={n:<3d} end to end     : {run['total']:8.0f} files/s  ({run['total'] / seq:.1f}x)")
    print(f"  re-ingest (all {run['skipped']} skipped): {run['rerun_s']:.2f} s; phases of the last run: {run['phases']}")


def compare_check_pools(sample: Path, workers: int) -> None:
    """Threads vs processes for the image checks (the choice made in workflows/ingest.py)."""
    from dogbreed.data.images import ImageLimits, check_image

    files = sorted(p for p in sample.rglob("*") if p.is_file())
    limits = ImageLimits(min_side=32, max_pixels=89_478_485)
    for name, pool_type in (("threads", ThreadPoolExecutor), ("processes", ProcessPoolExecutor)):
        started = time.perf_counter()
        with pool_type(max_workers=workers) as pool:
            list(
                pool.map(check_image, files, [limits] * len(files), chunksize=16)
                if name == "processes"
                else pool.map(lambda f: check_image(f, limits), files)
            )
        print(f"  image checks with {workers} {name:9s}: {len(files) / (time.perf_counter() - started):8.0f} files/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--workers", type=int, nargs="+", default=[32], help="data.store_workers for our ingest, one run each (default 32)"
    )
    parser.add_argument("--latency-ms", type=float, default=20.0, help="added per request by the proxy; 0: no proxied run")
    parser.add_argument("--sample", type=Path, default=None, help=f"photos to upload (default {SHARED_SAMPLE})")
    parser.add_argument("--proxied-only", action="store_true", help="skip the run straight to moto")
    parser.add_argument("--no-checks", action="store_true", help="skip the threads-vs-processes check comparison")
    args = parser.parse_args()
    sample = args.sample or (SHARED_SAMPLE if SHARED_SAMPLE.is_dir() else REPO / "examples" / "dogs")
    count = sum(1 for p in sample.rglob("*") if p.is_file())
    print(f"sample: {sample} ({count} files), {os.cpu_count()} CPUs, workers={args.workers}, load {os.getloadavg()}")

    work = Path(tempfile.mkdtemp(prefix="dogbreed-bench-"))
    try:
        with moto_server() as url:
            os.environ.update({"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"})
            os.environ.pop("AWS_PROFILE", None)
            if not args.proxied_only:
                measure("direct", url, sample, work, args.workers, count)
            if args.latency_ms > 0:
                with latency_proxy(url, delay_s=args.latency_ms / 1000) as proxy:
                    measure(f"proxied-{args.latency_ms:g}ms", proxy.url, sample, work, args.workers, count)
                print(f"  proxy: {proxy.connections} connections, {proxy.bytes_up / 2**20:.1f} MiB up")
            print(f"load average at the end: {os.getloadavg()}")
            if not args.no_checks:
                compare_check_pools(sample, 8)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
