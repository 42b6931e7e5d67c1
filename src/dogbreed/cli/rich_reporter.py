"""The Reporter the CLI hands to library code: rich progress bars and messages for a person at
a terminal, the plain lines of dogbreed.progress everywhere else."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from dogbreed.progress import PROGRESS_INTERVAL_S, Advance, ProgressLines


class RichReporter:
    """Progress bars and messages on the stderr console for a person at a terminal; plain
    lines (ProgressLines) when `plain` (--json) or when stderr is not a terminal."""

    def __init__(self, console, plain: bool = False, interval_s: float = PROGRESS_INTERVAL_S) -> None:
        self.console = console  # rich.console.Console
        self.plain = plain
        self.interval_s = interval_s

    def say(self, line: str) -> None:
        """One plain line, no markup: what a log reader or a CI runner keeps."""
        self.console.print(line, highlight=False, markup=False, soft_wrap=True)

    @contextmanager
    def task(self, description: str, total: float | None = None) -> Iterator[Advance]:
        if self.plain or not self.console.is_terminal:  # is_terminal already honours force_terminal
            with ProgressLines(description, total, self.say, self.interval_s) as advance:
                yield advance
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        columns = [SpinnerColumn(), TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn()]
        columns += [TimeElapsedColumn(), TimeRemainingColumn()]
        with Progress(*columns, console=self.console, transient=False) as progress:
            task_id = progress.add_task(description, total=total)
            yield lambda amount=1: progress.advance(task_id, amount)

    # Messages are plain text (paths and values may hold "[...]"), never rich markup.
    def info(self, message: str) -> None:
        if self.plain:
            self.say(message)
        else:
            self.console.print(message, highlight=False, markup=False)

    def warn(self, message: str) -> None:
        if self.plain:
            self.say(f"warning: {message}")
        else:
            from rich.text import Text

            self.console.print(Text.assemble(("warning:", "yellow"), " ", message), highlight=False)
