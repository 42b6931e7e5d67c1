"""How long work tells people what it is doing, without knowing who is watching.

Library code takes a Reporter; the CLI passes rich progress bars for people on a terminal
and plain lines everywhere else (`--json`, CI, a pipe; cli/rich_reporter.py), tests pass
NullReporter. Nothing here writes to stdout or knows rich.

Plain lines never go silent: a long step prints a progress line (count, rate, ETA) at least
every PROGRESS_INTERVAL_S from a timer thread, whether or not the step advanced, so a CI
runner that kills jobs silent for ten minutes, or a person, sees it alive. ProgressLines is
that one helper; its interval is a parameter, so a test needs no 30 s waits.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol

Advance = Callable[[float], None]


class Reporter(Protocol):
    def task(self, description: str, total: float | None = None) -> AbstractContextManager[Advance]: ...

    def info(self, message: str) -> None: ...

    def warn(self, message: str) -> None: ...


PROGRESS_INTERVAL_S = 30.0


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def _amount(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


class ProgressLines:
    """A step's progress as plain lines: `advance(n)` counts, a timer thread prints.

    `with ProgressLines("Extracting features", total=6000, say=print) as advance: ...`
    prints "Extracting features…" at once, then every `interval_s` a line such as
    "Extracting features: 1,200/6,000 (20%), 41.3/s, ETA 1m56s, 29s elapsed", and a last
    line with the total when the step ends. Without a total: count, rate and elapsed time.
    `status(text)` adds a word on what it is doing now (a job's state, a retry's wait)."""

    def __init__(
        self,
        description: str,
        total: float | None = None,
        say: Callable[[str], None] = print,
        interval_s: float = PROGRESS_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
        announce: bool = True,
    ) -> None:
        self.announce = announce  # say the description once at the start
        self.description = description
        self.total = total
        self.say = say
        self.interval_s = interval_s
        self.clock = clock
        self.done = 0.0
        self.note = ""
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = 0.0

    def advance(self, amount: float = 1) -> None:
        with self._lock:
            self.done += amount

    def update(self, done: float) -> None:
        """Set the count (for a step that counts by looking, as finished trials)."""
        with self._lock:
            self.done = done

    def status(self, note: str) -> None:
        with self._lock:
            self.note = note

    def line(self) -> str:
        with self._lock:
            done, note = self.done, self.note
        elapsed = max(self.clock() - self._started, 1e-9)
        rate = done / elapsed
        parts = []
        if self.total is not None or done:  # a step that only waits (a job's status) has no count
            parts.append(_amount(done) if self.total is None else f"{_amount(done)}/{_amount(self.total)}")
            if self.total:
                parts[0] += f" ({min(done / self.total, 1):.0%})"
            parts.append(f"{rate:,.1f}/s")
        if self.total and rate > 0 and done < self.total:
            parts.append(f"ETA {_duration((self.total - done) / rate)}")
        parts.append(f"{_duration(elapsed)} elapsed")
        if note:
            parts.append(note)
        return f"{self.description}: {', '.join(parts)}"

    def _tick(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.say(self.line())

    def __enter__(self) -> Callable[[float], None]:
        self._started = self.clock()
        if self.announce:
            self.say(f"{self.description}…")
        self._thread = threading.Thread(target=self._tick, name="progress-lines", daemon=True)
        self._thread.start()
        return self.advance

    def __exit__(self, kind, value, traceback) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if kind is None and self.announce and self.clock() - self._started >= self.interval_s:
            self.say(self.line().replace(": ", ": done, ", 1))


class NullReporter:
    """Says nothing: for tests and library use."""

    @contextmanager
    def task(self, description: str, total: float | None = None) -> Iterator[Advance]:
        yield lambda amount=1: None

    def info(self, message: str) -> None:
        pass

    def warn(self, message: str) -> None:
        pass
