"""Progress lines from inside the job, for steps long enough to look hung.

The job's stderr is its log: the local backend relays it to the CLI, SageMaker sends it to
CloudWatch. A step like feature extraction (minutes on a CPU) prints a line at least every
DOGBREED_PROGRESS_SECONDS (default 30) from a timer thread, with count, rate and ETA, in the
same shape as the CLI's own plain progress lines (dogbreed.progress.ProgressLines; the job
ships without dogbreed, so it carries this small copy):

    feature cache: train.view0: 1,200/6,000 (20%), 41.3/s, ETA 1m56s, 29s elapsed
"""

from __future__ import annotations

import os
import sys
import threading
import time

DEFAULT_INTERVAL_S = 30.0


def interval_from_env() -> float:
    try:
        value = float(os.environ.get("DOGBREED_PROGRESS_SECONDS", DEFAULT_INTERVAL_S))
    except ValueError:
        return DEFAULT_INTERVAL_S
    return value if value > 0 else DEFAULT_INTERVAL_S


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class Ticker:
    """`with Ticker("feature cache: train", total=6000) as advance: advance(64)`."""

    def __init__(self, description: str, total: int | None = None, interval_s: float | None = None, say=None) -> None:
        self.description = description
        self.total = total
        self.interval_s = interval_s if interval_s is not None else interval_from_env()
        self.say = say or (lambda line: print(line, file=sys.stderr, flush=True))
        self.done = 0
        self._stop = threading.Event()
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._tick, name="progress", daemon=True)

    def advance(self, amount: int = 1) -> None:
        self.done += amount  # one writer (the loop); the timer thread only reads

    def line(self) -> str:
        done, elapsed = self.done, max(time.monotonic() - self._started, 1e-9)
        rate = done / elapsed
        parts = [f"{done:,}" if self.total is None else f"{done:,}/{self.total:,} ({min(done / max(self.total, 1), 1):.0%})"]
        parts.append(f"{rate:,.1f}/s")
        if self.total and rate > 0 and done < self.total:
            parts.append(f"ETA {_duration((self.total - done) / rate)}")
        parts.append(f"{_duration(elapsed)} elapsed")
        return f"{self.description}: {', '.join(parts)}"

    def _tick(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.say(self.line())

    def __enter__(self):
        self._started = time.monotonic()
        self.say(f"{self.description}…")
        self._thread.start()
        return self.advance

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
