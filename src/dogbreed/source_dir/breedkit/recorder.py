"""The job's flight recorder: JSON lines in SM_OUTPUT_DATA_DIR/records.jsonl, always on.

Written by rank 0 only, one JSON object per line, flushed as it goes (a killed job keeps
what it recorded; a resumed job appends, starting with a new "meta" record, and repeats the
step records of the epoch the kill interrupted). Every record
has "type" and "time" (Unix seconds, float). Numbers that are not finite (nan, inf) are
written as null, so every line is strict JSON. The types and their fields:

  {"type": "meta", "time", "arch", "hyperparameters": {name: value}, "device",
   "world_size", "num_train", "num_valid", "num_test", "num_classes", "torch_version",
   "feature_cache": bool, "resumed_from_epoch": int | null,
   "cpu_count", "torch_threads"}    # cores the machine has; torch's intra-op threads
                                    # hyperparameters as parsed, snake_case: batch_size,
                                    # weight_decay, ...; the first record of every (re)start
  {"type": "step", "time", "epoch", "step", "loss", "lr",
   "grad_norm": {group: L2 norm},   # groups with gradients only: "head",
                                    # "backbone.features.17" (a stage of `features`),
                                    # "backbone.layer4" (resnet), ...
   "data_time", "compute_time",     # seconds waiting for the batch / forward+backward+step
   "images_per_sec"}                # all ranks: batch * world_size / (data + compute time)
  {"type": "eval", "time", "epoch", "train_loss", "train_acc", "valid_loss", "valid_acc"}
  {"type": "system", "time", "cpu_percent", "rss_mb", "gpu_util", "gpu_mem_mb"}
                                    # every `system_every` seconds and at start and end;
                                    # cpu_percent of this process (100 = one core busy);
                                    # gpu_util (percent) and gpu_mem_mb are null without CUDA
  {"type": "final", "time", "best_epoch", "test_loss", "test_acc", "train_seconds"}

epoch counts from 1 as in the metric lines; step counts from 1 within an epoch.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from pathlib import Path
from typing import Any

import torch

RECORDS_FILE = "records.jsonl"


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


class ProcessSampler:
    """CPU percent and resident memory of this process: psutil when importable (it is not
    guaranteed in the SageMaker training container), else /proc (Linux)."""

    def __init__(self) -> None:
        try:
            import psutil

            self._process = psutil.Process()
            self._process.cpu_percent(None)  # the first call only starts the measurement
        except ImportError:
            self._process = None
        self._last = (time.monotonic(), self._proc_cpu_seconds())

    @staticmethod
    def _proc_cpu_seconds() -> float | None:
        try:
            fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
            # utime and stime are fields 14 and 15 of proc(5); 3 is the first after ')'.
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError):
            return None

    def cpu_percent(self) -> float | None:
        if self._process is not None:
            return float(self._process.cpu_percent(None))
        now, cpu = time.monotonic(), self._proc_cpu_seconds()
        (then, cpu_then), self._last = self._last, (now, cpu)
        if cpu is None or cpu_then is None or now <= then:
            return None
        return 100.0 * (cpu - cpu_then) / (now - then)

    def rss_mb(self) -> float | None:
        if self._process is not None:
            return self._process.memory_info().rss / 2**20
        try:
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        return None


def _gpu_stats() -> tuple[float | None, float | None]:
    if not torch.cuda.is_available():
        return None, None
    memory = torch.cuda.memory_allocated() / 2**20
    try:
        utilization = float(torch.cuda.utilization())  # needs pynvml; absent in some images
    except Exception:
        utilization = None
    return utilization, memory


class Recorder:
    """Appends records to `path`; a Recorder(None) (other ranks) records nothing."""

    def __init__(self, path: str | Path | None, system_every: float = 10.0) -> None:
        self.path = Path(path) if path is not None else None
        self._lock = threading.Lock()
        self._handle = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = self.path.open("a", encoding="utf-8")
        self._sampler = ProcessSampler()
        self._system_every = system_every

    @property
    def enabled(self) -> bool:
        return self._handle is not None

    def write(self, type_: str, **fields: Any) -> None:
        if self._handle is None:
            return
        line = json.dumps(_finite({"type": type_, **fields, "time": time.time()}), allow_nan=False)
        with self._lock:
            self._handle.write(line + "\n")
            self._handle.flush()

    def meta(self, **fields: Any) -> None:
        """The run's description; then system samples start (one now, then periodically)."""
        self.write("meta", **fields)
        if self._handle is None or self._thread is not None:
            return
        self.system()
        if self._system_every > 0:
            self._thread = threading.Thread(target=self._sample_every, args=(self._system_every,), daemon=True)
            self._thread.start()

    def step(self, **fields: Any) -> None:
        self.write("step", **fields)

    def eval(self, **fields: Any) -> None:
        self.write("eval", **fields)

    def final(self, **fields: Any) -> None:
        self.write("final", **fields)

    def system(self) -> None:
        if self._handle is None:
            return
        gpu_util, gpu_mem = _gpu_stats()
        self.write(
            "system",
            cpu_percent=self._sampler.cpu_percent(),
            rss_mb=self._sampler.rss_mb(),
            gpu_util=gpu_util,
            gpu_mem_mb=gpu_mem,
        )

    def _sample_every(self, seconds: float) -> None:
        while not self._stop.wait(seconds):
            self.system()

    def close(self) -> None:
        if self._handle is None:
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.system()
        with self._lock:
            self._handle.close()
            self._handle = None

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
