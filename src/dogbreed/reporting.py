"""How long work tells people what it is doing, without knowing who is watching.

Library code takes a Reporter; the CLI passes rich progress bars for people and a quiet
one for `--json`, tests pass NullReporter. Nothing here writes to stdout.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol

Advance = Callable[[float], None]


class Reporter(Protocol):
    def task(self, description: str, total: float | None = None) -> AbstractContextManager[Advance]: ...

    def info(self, message: str) -> None: ...

    def warn(self, message: str) -> None: ...


class NullReporter:
    """Says nothing: for tests and library use."""

    @contextmanager
    def task(self, description: str, total: float | None = None) -> Iterator[Advance]:
        yield lambda amount=1: None

    def info(self, message: str) -> None:
        pass

    def warn(self, message: str) -> None:
        pass


class RichReporter:
    """Progress bars and messages on the stderr console; bars are hidden when quiet."""

    def __init__(self, console, quiet: bool = False) -> None:  # console: rich.console.Console
        self.console = console
        self.quiet = quiet

    @contextmanager
    def task(self, description: str, total: float | None = None) -> Iterator[Advance]:
        if self.quiet or not self.console.is_terminal:  # is_terminal already honours force_terminal
            # Headless: one line at start, none per item.
            if not self.quiet:
                self.console.print(f"{description}…", highlight=False)
            yield lambda amount=1: None
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

        columns = [SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn()]
        columns += [TimeElapsedColumn(), TimeRemainingColumn()]
        with Progress(*columns, console=self.console, transient=False) as progress:
            task_id = progress.add_task(description, total=total)
            yield lambda amount=1: progress.advance(task_id, amount)

    def info(self, message: str) -> None:
        if not self.quiet:
            self.console.print(message, highlight=False)

    def warn(self, message: str) -> None:
        self.console.print(f"[yellow]warning:[/] {message}", highlight=False)
