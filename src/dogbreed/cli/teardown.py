"""Stop and delete endpoints (and what belongs to them) so nothing keeps billing."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from dogbreed.cli.options import BackendOpt, ConfigOpt, DryRunOpt, JsonOpt, SetOpt, VerboseOpt, YesOpt
from dogbreed.cli.session import Session
from dogbreed.errors import NotBuiltError

NAME = "teardown"


def command(
    names: Annotated[Optional[list[str]], typer.Argument(help="Endpoint names (default: the latest).")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every live endpoint this tool created.")] = False,
    yes: YesOpt = False,
    dry_run: DryRunOpt = False,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    backend: BackendOpt = None,
    json_out: JsonOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    Session.start(config, set_, backend, json_out, verbose)
    raise NotBuiltError("`dogbreed teardown` is not built yet")
