"""Ask an endpoint which breeds are in these photos."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from dogbreed.cli.options import BackendOpt, ConfigOpt, JsonOpt, SetOpt, VerboseOpt
from dogbreed.cli.session import Session
from dogbreed.errors import NotBuiltError

NAME = "predict"


def command(
    images: Annotated[list[str], typer.Argument(help="Image files, folders or globs.")],
    endpoint: Annotated[Optional[str], typer.Option("--endpoint", help="Endpoint name (default: the latest deployed).")] = None,
    top_k: Annotated[Optional[int], typer.Option("--top-k", "-k", min=1, help="Breeds per image (default: deploy.top_k).")] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    backend: BackendOpt = None,
    json_out: JsonOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    Session.start(config, set_, backend, json_out, verbose, {"deploy.top_k": top_k})
    raise NotBuiltError("`dogbreed predict` is not built yet")
