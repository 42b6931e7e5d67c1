"""How fast `dogbreed ingest` stores many small photos on S3, against the one-at-a-time loop.

Runs a real moto_server on 127.0.0.1 (started and stopped here), so every request goes
through boto3's full HTTP path; absolute numbers are the laptop's and moto's, the ratio is
the point. Usage: python benchmarks/bench_ingest_s3.py [--workers N] [--no-checks]

  baseline: for each file, s3.upload_file(...)   (the seed's way; one file at a time)
  ours:     dogbreed.workflows.ingest.ingest(...) to s3:// (checks every image too)
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

from dogbreed.testing import moto_server

REPO = Path(__file__).resolve().parents[1]
SHARED_SAMPLE = REPO.parent / "shared" / "data" / "dog-samples" / "stanford-dogs-224"
BUCKET = "dogbreed-bench"


def baseline(sample: Path, client) -> float:
    files = sorted(p for p in sample.rglob("*") if p.is_file())
    started = time.perf_counter()
    for path in files:
        client.upload_file(str(path), BUCKET, f"baseline/{path.relative_to(sample).as_posix()}")
    return len(files) / (time.perf_counter() - started)


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
    parser.add_argument("--workers", type=int, default=8, help="data.workers for our ingest (default 8)")
    parser.add_argument("--no-checks", action="store_true", help="skip the threads-vs-processes check comparison")
    args = parser.parse_args()
    sample = SHARED_SAMPLE if SHARED_SAMPLE.is_dir() else REPO / "examples" / "dogs"
    count = sum(1 for p in sample.rglob("*") if p.is_file())
    print(f"sample: {sample} ({count} files), {os.cpu_count()} CPUs, workers={args.workers}")

    work = Path(tempfile.mkdtemp(prefix="dogbreed-bench-"))
    try:
        with moto_server() as url:
            os.environ.update(
                {
                    "AWS_ACCESS_KEY_ID": "bench",
                    "AWS_SECRET_ACCESS_KEY": "bench",
                    "AWS_DEFAULT_REGION": "us-east-1",
                    "AWS_ENDPOINT_URL": url,
                }
            )
            os.environ.pop("AWS_PROFILE", None)
            import boto3

            from dogbreed.config import load_config
            from dogbreed.workflows.ingest import ingest
            from dogbreed.workspace import Workspace

            client = boto3.client("s3")
            client.create_bucket(Bucket=BUCKET)
            seq = baseline(sample, client)

            config = load_config(overrides={"workspace": str(work / "ws"), "data.workers": args.workers})
            started = time.perf_counter()
            result = ingest(config, Workspace(work / "ws"), source=str(sample), dest=f"s3://{BUCKET}/ours")
            total = time.perf_counter() - started
            assert result.uploaded == count - len(result.problems), result.problems[:3]
            store_s = result.timings_s["store"]
            started = time.perf_counter()
            again = ingest(config, Workspace(work / "ws"), source=str(sample), dest=f"s3://{BUCKET}/ours")
            rerun = time.perf_counter() - started
            assert again.uploaded == 0

            ours_total, ours_upload = result.uploaded / total, result.uploaded / store_s
            print(f"  sequential upload_file loop (baseline): {seq:8.0f} files/s")
            print(f"  ours, upload phase only               : {ours_upload:8.0f} files/s  ({ours_upload / seq:.1f}x)")
            print(f"  ours, end to end (checks + upload)    : {ours_total:8.0f} files/s  ({ours_total / seq:.1f}x)")
            print(f"  ours, re-ingest (all {again.skipped} skipped)      : {rerun:8.2f} s")
            print(f"  phases: {result.timings_s}")
            if not args.no_checks:
                compare_check_pools(sample, args.workers)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
