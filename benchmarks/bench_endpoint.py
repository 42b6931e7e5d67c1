"""How much the local endpoint adds to the model's own time, at concurrency 1 and 4.

    python benchmarks/bench_endpoint.py [--model DIR|model.tar.gz] [--requests 200] [--workers 4]

Measured in one run, on one machine, with the same image and the same handler code:
  in-process   inference.py's input_fn -> predict_fn -> output_fn called directly, with the
               server's torch thread count (what the model costs)
  endpoint     POST /invocations to `python -m dogbreed.serving` on 127.0.0.1 (deploy's command),
               one keep-alive connection per client thread
  /ping        GET /ping: the HTTP layer alone
  overhead     per request: the client's latency minus the model's own time inside the server
               (its Server-Timing header), i.e. everything the server adds. Goal: p50 < 2 ms.
  predict      `dogbreed predict IMAGE` against the same server: from the CLI's start to its
               first request reaching the endpoint (its own start-up: interpreter, imports,
               config, ledger), and to its exit, beside one request's own latency.
               The request passes a recording relay on 127.0.0.1, which notes its arrival.
The three are measured in alternating rounds, so a neighbour's load on a shared machine
lands on all of them alike instead of on whichever ran last; the predict runs follow them. Without
--model, a mobilenet_v2 with the vendored ImageNet weights and a 133-breed head (untrained:
latency does not depend on the head's values) is built in a temporary folder. Traffic only
goes to 127.0.0.1, a bounded number of requests, each phase capped at --max-seconds.
"""

from __future__ import annotations

import argparse
import http.server
import importlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SOURCE_DIR = REPO / "src" / "dogbreed" / "source_dir"
WEIGHTS = REPO / "examples" / "weights" / "mobilenet_v2-imagenet1k-from-int8.fp16.pth"
IMAGE = REPO / "examples" / "predict" / "Beagle_01141.jpg"


def build_model_dir(dest: Path, num_classes: int = 133) -> Path:
    """The job contract's layout: model.pth, classes.json, hyperparameters.json, code/."""
    import torch

    sys.path.insert(0, str(SOURCE_DIR))
    from breedkit import classes, models

    torch.manual_seed(0)
    model = models.build_model("mobilenet_v2", num_classes, str(WEIGHTS)).eval()
    dest.mkdir(parents=True)
    torch.save(model.state_dict(), dest / "model.pth")
    folders = [f"{i + 1:03d}.Breed_{i + 1:03d}" for i in range(num_classes)]
    classes.write_classes(dest, classes.classes_from_folders(folders))
    hps = {"arch": "mobilenet_v2", "num_classes": num_classes, "preset": {"resize": 256, "crop": 224}}
    classes.write_hyperparameters(dest, hps)
    (dest / "code").mkdir()
    shutil.copy2(SOURCE_DIR / "inference.py", dest / "code" / "inference.py")
    shutil.copytree(SOURCE_DIR / "breedkit", dest / "code" / "breedkit", ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def model_dir_from(argument: str | None, scratch: Path) -> Path:
    if argument is None:
        return build_model_dir(scratch / "model")
    sys.path.insert(0, str(REPO / "src"))
    from dogbreed.serving.model_archive import prepare_model_dir

    return prepare_model_dir(argument, scratch / "model")


def run_phase(call: Callable[[], float | None], concurrency: int, requests: int) -> list[tuple[float, float | None]]:
    """(latency ms, what call() returned) for `requests` calls spread over `concurrency` threads."""
    results: list[tuple[float, float | None]] = []
    lock = threading.Lock()
    remaining = [requests]

    def worker() -> None:
        while True:
            with lock:
                if remaining[0] <= 0:
                    return
                remaining[0] -= 1
            started = time.perf_counter()
            extra = call()
            elapsed = (time.perf_counter() - started) * 1000
            with lock:
                results.append((elapsed, extra))

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def interleaved(
    calls: dict[str, Callable[[], float | None]], concurrency: int, requests: int, max_seconds: float, rounds: int = 10
) -> dict[str, list[tuple[float, float | None]]]:
    """Each call's results, gathered in alternating rounds after a warm-up."""
    for call in calls.values():
        run_phase(call, concurrency, 3 * concurrency)
    gathered: dict[str, list[tuple[float, float | None]]] = {label: [] for label in calls}
    deadline = time.monotonic() + max_seconds
    for _ in range(rounds):
        for label, call in calls.items():
            gathered[label] += run_phase(call, concurrency, max(1, requests // rounds))
        if time.monotonic() > deadline:
            break
    return gathered


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def start_server(model_dir: Path, workers: int, folder: Path) -> tuple[subprocess.Popen, str]:
    state = folder / "server.json"
    log = (folder / "server.log").open("wb")
    argv = [
        sys.executable,
        "-m",
        "dogbreed.serving",
        "--name",
        "bench",
        "--model-dir",
        str(model_dir),
        "--port",
        "0",
        "--workers",
        str(workers),
        "--state-file",
        str(state),
    ]
    process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited: {(folder / 'server.log').read_text()[-2000:]}")
        try:
            url = json.loads(state.read_text())["url"]
            if urllib.request.urlopen(url + "/ping", timeout=2).status == 200:
                return process, url
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.1)
    process.kill()
    raise SystemExit("the server did not become ready")


class _Relay(http.server.BaseHTTPRequestHandler):
    """Passes each request on to the real server, noting when it arrived (perf_counter)."""

    target = ""
    arrivals: list[tuple[float, str]] = []

    def log_message(self, *args) -> None:  # quiet
        pass

    def _relay(self, method: str) -> None:
        self.arrivals.append((time.perf_counter(), self.path))
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() in ("content-type", "accept")}
        request = urllib.request.Request(self.target + self.path, data=body, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                status, answer, content_type = response.status, response.read(), response.headers.get("Content-Type", "")
        except urllib.error.HTTPError as exc:
            status, answer, content_type = exc.code, exc.read(), exc.headers.get("Content-Type", "")
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def do_GET(self) -> None:
        self._relay("GET")

    def do_POST(self) -> None:
        self._relay("POST")


def predict_startup(url: str, pid: int, scratch: Path, runs: int) -> list[tuple[float, float, float, float]]:
    """(ms to the first request (predict's /ping), ms to its /invocations, ms to exit, CPU
    seconds of the CLI) per `dogbreed predict` run, against the server at url (pid) through a
    recording relay; the endpoint is entered in a scratch workspace's ledger as deploy would."""
    from dogbreed.ledger import Ledger

    _Relay.target = url
    relay = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Relay)
    threading.Thread(target=relay.serve_forever, daemon=True).start()
    workspace = scratch / "predict-ws"
    workspace.mkdir()
    relay_url = f"http://127.0.0.1:{relay.server_address[1]}"
    Ledger(workspace / "ledger.sqlite").record("endpoint", "bench", "local", uri=relay_url, state="in-service", meta={"pid": pid})
    exe = Path(sys.executable).parent / "dogbreed"
    argv = [str(exe), "predict", str(IMAGE), "--endpoint", "bench", "--json", "--set", f"workspace={workspace}"]
    results = []
    try:
        for _ in range(runs):
            _Relay.arrivals = []
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            started = time.perf_counter()
            done = subprocess.run(argv, capture_output=True, text=True, check=False)
            ended = time.perf_counter()
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            invocations = [at for at, path in _Relay.arrivals if path.startswith("/invocations")]
            if done.returncode != 0 or not invocations:
                raise SystemExit(f"dogbreed predict failed: {done.stderr[-2000:]}")
            cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            first = _Relay.arrivals[0][0]
            results.append(((first - started) * 1000, (invocations[0] - started) * 1000, (ended - started) * 1000, cpu))
    finally:
        relay.shutdown()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model dir or model.tar.gz (default: build a mobilenet_v2)")
    parser.add_argument("--requests", type=int, default=200, help="requests per measurement and concurrency level")
    parser.add_argument("--workers", type=int, default=4, help="server workers (deploy.workers)")
    parser.add_argument("--max-seconds", type=float, default=60.0, help="time cap per concurrency level")
    parser.add_argument("--predict-runs", type=int, default=5, help="`dogbreed predict` runs timed from start to first request")
    args = parser.parse_args()

    threads = max(1, (os.cpu_count() or 1) // args.workers)  # what the server gives each worker
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    sys.path.insert(0, str(REPO / "src"))
    from dogbreed.serving.client import HttpTransport

    body = IMAGE.read_bytes()
    with tempfile.TemporaryDirectory(prefix="bench-endpoint-") as scratch:
        model_dir = model_dir_from(args.model, Path(scratch))
        sys.path.insert(0, str(model_dir / "code"))
        handler = importlib.import_module("inference")
        import torch

        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
        model = handler.model_fn(str(model_dir))

        def in_process() -> None:
            handler.output_fn(handler.predict_fn(handler.input_fn(body, "image/jpeg"), model), "application/json")

        process, url = start_server(model_dir, args.workers, Path(scratch))
        transport = HttpTransport()
        headers = {"Content-Type": "image/jpeg", "Accept": "application/json"}

        def invoke() -> float:
            response = transport.request("POST", url + "/invocations", headers, body, 60)
            assert response.status == 200, response.body
            return float(response.headers["server-timing"].partition("dur=")[2])  # the model's ms

        def ping() -> None:
            assert transport.request("GET", url + "/ping", {}, None, 10).status == 200

        rows = []
        try:
            for concurrency in (1, 4):
                calls = {"in-process": in_process, "endpoint": invoke, "/ping": ping}
                gathered = interleaved(calls, concurrency, args.requests, args.max_seconds)
                gathered["overhead"] = [(latency - model, None) for latency, model in gathered["endpoint"]]
                base = [latency for latency, _ in gathered["in-process"]]
                for label, results in gathered.items():
                    latencies = [latency for latency, _ in results]
                    p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
                    ratios = (p50 / percentile(base, 50), p99 / percentile(base, 99)) if label != "overhead" else (None, None)
                    rows.append((concurrency, label, len(latencies), p50, p99, *ratios))
            startups = predict_startup(url, process.pid, Path(scratch), args.predict_runs)
        finally:
            process.terminate()
            process.wait(timeout=120)

    print(
        f"\nlocal endpoint vs in-process handler: {IMAGE.name} ({len(body):,} bytes), mobilenet_v2, "
        f"{args.workers} workers, {threads} torch thread(s) each, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    print(f"{'conc':>4}  {'what':<11} {'n':>5} {'p50 ms':>8} {'p99 ms':>8} {'p50 ratio':>10} {'p99 ratio':>10}")
    for concurrency, label, n, p50, p99, r50, r99 in rows:
        ratios = f"{r50:>10.3f} {r99:>10.3f}" if r50 is not None else f"{'':>10} {'':>10}"
        print(f"{concurrency:>4}  {label:<11} {n:>5} {p50:>8.2f} {p99:>8.2f} {ratios}")
    overhead = next(r[3] for r in rows if r[0] == 1 and r[1] == "overhead")
    print(
        f"\nserver overhead at p50, concurrency 1: {overhead:.2f} ms (goal < 2 ms)"
        f"{'' if overhead < 2 else '  <- over the goal (check the load average above)'}"
    )
    print("overhead = client latency - the model's time inside the server (Server-Timing), per request")
    request_ms = next(r[3] for r in rows if r[0] == 1 and r[1] == "endpoint")
    first, invoked, total, cpu = (sorted(run[i] for run in startups) for i in range(4))
    middle = len(startups) // 2
    print(
        f"\n`dogbreed predict {IMAGE.name}`, {len(startups)} runs, medians: start to its first request (/ping) "
        f"{first[middle]:.0f} ms (min {first[0]:.0f}), to /invocations {invoked[middle]:.0f} ms, to exit "
        f"{total[middle]:.0f} ms, CPU {cpu[middle]:.2f} s; one request itself {request_ms:.1f} ms p50: "
        f"start-up is {first[middle] / request_ms:.0f}x the request"
    )


if __name__ == "__main__":
    main()
