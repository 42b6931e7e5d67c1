"""Plot what a training or tuning job did and judge it by rules, as one HTML file."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from dogbreed.cli.options import BackendOpt, ConfigOpt, JsonOpt, SetOpt, VerboseOpt
from dogbreed.cli.session import Session
from dogbreed.errors import NotBuiltError

NAME = "report"


def command(
    job: Annotated[Optional[str], typer.Argument(help="Training job (default: the latest).")] = None,
    tuning: Annotated[Optional[str], typer.Option("--tuning", help="Report on this tuning job instead ('latest' works).")] = None,
    fail_on_rules: Annotated[bool, typer.Option("--fail-on-rules", help="Exit 1 when a rule flags an issue.")] = False,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    backend: BackendOpt = None,
    json_out: JsonOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    Session.start(config, set_, backend, json_out, verbose)
    raise NotBuiltError("`dogbreed report` is not built yet")
