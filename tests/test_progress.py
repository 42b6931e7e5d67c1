"""Logs that never go silent: long steps print count, rate and ETA on a timer, headless and
with --json, whether or not the step advanced. The interval is injected (no 30 s waits); the
tests wait for lines to arrive and never assert how long anything took."""

from __future__ import annotations

import io
import re
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from rich.console import Console

from dogbreed.cli.rich_reporter import RichReporter
from dogbreed.cli.trial_table import TrialView
from dogbreed.ledger import Resource
from dogbreed.progress import ProgressLines

SOURCE_DIR = Path(__file__).resolve().parents[1] / "src" / "dogbreed" / "source_dir"
LINE = re.compile(r"^(?P<what>.+): (?P<done>[\d,]+)/(?P<total>[\d,]+) \(\d+%\), [\d,.]+/s(, ETA \S+)?, \S+ elapsed")


class Lines:
    """A `say` that keeps lines and lets a step wait until n have arrived (deadline, no timing)."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._more = threading.Condition()

    def __call__(self, line: str) -> None:
        with self._more:
            self.lines.append(line)
            self._more.notify_all()

    def wait_for(self, count: int, timeout_s: float = 60) -> None:
        with self._more:
            assert self._more.wait_for(lambda: len(self.lines) >= count, timeout=timeout_s), self.lines


def test_progress_lines_keep_coming_while_the_step_stalls():
    said = Lines()
    with ProgressLines("Uploading", total=10, say=said, interval_s=0.01) as advance:
        advance(3)
        said.wait_for(4)  # three timer lines with no progress in between: still lines
        advance(2)
        said.wait_for(len(said.lines) + 2)
    assert said.lines[0] == "Uploading…"
    matches = [LINE.match(line) for line in said.lines[1:-1]]
    assert all(matches), said.lines
    counts = [int(m["done"]) for m in matches]
    assert counts == sorted(counts) and counts[0] == 3 and counts[-1] == 5 and {m["total"] for m in matches} == {"10"}
    assert "ETA" in said.lines[1] and said.lines[-1].startswith("Uploading: done, 5/10")


def test_a_wait_without_a_count_says_its_state():
    said = Lines()
    progress = ProgressLines("training job j", None, said, interval_s=0.01, announce=False)
    with progress:
        progress.status("InProgress / Training")
        said.wait_for(2)
    assert all(re.fullmatch(r"training job j: \S+ elapsed(, InProgress / Training)?", line) for line in said.lines), said.lines


@pytest.mark.parametrize(("terminal", "json_mode"), [(False, False), (True, True)])
def test_the_reporter_prints_plain_lines_headless_and_with_json(terminal, json_mode):
    out = io.StringIO()
    reporter = RichReporter(Console(file=out, force_terminal=terminal, width=200), plain=json_mode, interval_s=0.01)
    reporter.info("starting")
    with reporter.task("Checking 4 images", total=4) as advance:
        advance(1)
        deadline = time.monotonic() + 60
        while out.getvalue().count("Checking 4 images: ") < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
    lines = out.getvalue().splitlines()
    assert lines[0] == "starting" and lines[1] == "Checking 4 images…"
    assert sum(bool(LINE.match(line)) for line in lines) >= 2
    assert "\x1b[" not in out.getvalue()  # plain text, no colours or bars, even on a terminal with --json


def test_tuning_trials_report_progress_headless():
    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=200)
    moment = datetime.now(timezone.utc)
    trial = Resource("trial", "t-1", "local", None, "Completed", moment, moment, meta={"params": {"lr": 0.001}})
    with TrialView(console, "tuning job t", "valid_acc", total=4, interval_s=0.01) as view:
        view.show([trial])
        deadline = time.monotonic() + 60
        while out.getvalue().count("tuning job t: 1/4") < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert out.getvalue().count("tuning job t: 1/4 (25%)") >= 2, out.getvalue()


def test_a_slow_feature_extraction_keeps_printing_lines(monkeypatch):
    """The job side (breedkit, shipped without dogbreed): each image waits until a progress line
    arrived, so lines must keep coming for the extraction to finish at all."""
    import torch

    monkeypatch.syspath_prepend(str(SOURCE_DIR))
    from breedkit import feature_cache

    said = Lines()

    class SlowImages(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return 6

        def __getitem__(self, index: int):
            said.wait_for(index + 2)  # the announcement, then one timer line per image
            return torch.full((4, 4, 3), index, dtype=torch.uint8), 0  # uint8 pixels, as _view_pixels yields

    features = feature_cache.extract(
        torch.nn.Flatten(),
        SlowImages(),
        device=torch.device("cpu"),
        batch_size=1,
        num_workers=0,
        description="feature cache: extracting train.view0",
        progress_interval_s=0.01,
        say=said,
    )
    assert features.shape == (6, 48)
    assert said.lines[0] == "feature cache: extracting train.view0…"
    progress = [LINE.match(line) for line in said.lines[1:]]
    assert all(progress) and all(m["what"] == "feature cache: extracting train.view0" for m in progress)
    assert [int(m["done"]) for m in progress] == sorted(int(m["done"]) for m in progress)
    assert {m["total"] for m in progress} == {"6"}
    sys.modules.pop("breedkit.feature_cache", None)
