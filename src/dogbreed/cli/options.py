"""Option aliases shared by every command, so each flag is spelled and documented once."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer


class BackendName(str, Enum):
    local = "local"
    sagemaker = "sagemaker"


ConfigOpt = Annotated[
    Optional[list[Path]],
    typer.Option(
        "--config",
        "-c",
        help="YAML config layered over the built-in defaults (repeatable; later files win).",
        show_default=False,
        dir_okay=False,
    ),
]
SetOpt = Annotated[
    Optional[list[str]],
    typer.Option("--set", help="Override one config key, e.g. --set train.lr=0.01 (repeatable).", metavar="KEY=VALUE"),
]
BackendOpt = Annotated[Optional[BackendName], typer.Option("--backend", help="Where to run (overrides the config's backend).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print exactly one JSON document on stdout; logs go to stderr.")]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", "--debug", help="Show debug logs and tracebacks.")]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Print the plan and the exact requests; run nothing billable.")]
WaitOpt = Annotated[bool, typer.Option("--wait/--no-wait", help="Wait for the work to finish (default) or return at once.")]
