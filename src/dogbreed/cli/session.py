"""What every command starts from: the effective config, the workspace, and the outputs.

The CLI builds one Session per invocation and hands its parts (config, ledger, reporter)
to library code; nothing below the CLI reads flags or prints to stdout.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dogbreed.cli.rich_reporter import RichReporter
from dogbreed.workspace import Workspace

if TYPE_CHECKING:  # pydantic (under config) costs ~0.3 s, rich.console ~0.05 s: `--help` pays neither
    from rich.console import Console

    from dogbreed.backends.base import Backend
    from dogbreed.config import Config

# Rich lays out for 80 columns when output is not a terminal (a CI log, `make demo | tee`),
# which cuts tables into "dogbree…"; a log has no width, so give it a wide one. COLUMNS wins.
LOG_WIDTH = 160


def _width(stream: Any) -> int | None:
    if "COLUMNS" in os.environ or stream.isatty():
        return None  # rich's own choice: COLUMNS, else the terminal's size
    return LOG_WIDTH


# markup=False: a str printed or put in a table is shown as it is. Paths, breed folders and
# log lines hold "[...]" ("photos [copy]", "[/x]") that rich markup would swallow or choke on
# (MarkupError); styling is done with rich.text.Text, never with markup in strings.
def stderr_console() -> Console:
    from rich.console import Console

    return Console(stderr=True, soft_wrap=True, width=_width(sys.stderr), markup=False)


def stdout_console() -> Console:
    from rich.console import Console

    return Console(soft_wrap=True, width=_width(sys.stdout), markup=False)


@dataclass
class Session:
    config: Config
    json_mode: bool = False
    verbose: bool = False
    config_files: list[Path] = field(default_factory=list)
    stdout: Console = field(default_factory=stdout_console)
    stderr: Console = field(default_factory=stderr_console)

    @classmethod
    def start(
        cls,
        config: list[Path] | None = None,
        sets: list[str] | None = None,
        backend: Any = None,
        json_mode: bool = False,
        verbose: bool = False,
        overrides: Mapping[str, Any] | None = None,
    ) -> Session:
        from dogbreed.config import load_config

        os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
        merged = dict(overrides or {})
        if backend is not None:
            merged["backend"] = getattr(backend, "value", backend)
        loaded = load_config(config or [], sets or [], merged)
        return cls(config=loaded, json_mode=json_mode, verbose=verbose, config_files=list(config or []))

    @property
    def workspace(self) -> Workspace:
        return Workspace(Path(self.config.workspace))

    @property
    def reporter(self) -> RichReporter:
        return RichReporter(self.stderr, plain=self.json_mode)

    def backend(self, name: str | None = None) -> Backend:
        """The backend `name` (default: the config's), built from this command's config."""
        from dogbreed.backends import get_backend

        return get_backend(self.config, self.workspace, self.reporter, name)

    @property
    def interactive(self) -> bool:
        return sys.stdin.isatty() and not self.json_mode

    def emit(self, answer: Mapping[str, Any], render: Callable[[Console], None] | None = None) -> None:
        """The command's one answer: JSON on stdout with --json, else a rendering for people."""
        if self.json_mode:
            sys.stdout.write(json.dumps(strict_json(answer), indent=2, default=str, allow_nan=False) + "\n")
            sys.stdout.flush()
        elif render is not None:
            render(self.stdout)
        else:
            self.stdout.print_json(json.dumps(strict_json(answer), default=str, allow_nan=False))


def strict_json(value: Any) -> Any:
    """`value` with every nan or infinite float as null: Python writes them as NaN and
    Infinity, which no JSON parser but Python's reads (jq, JSON.parse), and a job's files
    (a diverged run's losses, a damaged metrics.json) carry them into answers."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {key: strict_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(item) for item in value]
    return value
