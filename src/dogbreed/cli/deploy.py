"""Serve a trained model behind SageMaker's endpoint contract (/ping, /invocations)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from dogbreed.cli.options import BackendOpt, ConfigOpt, DryRunOpt, JsonOpt, SetOpt, VerboseOpt, WaitOpt
from dogbreed.cli.session import Session
from dogbreed.errors import NotBuiltError

NAME = "deploy"


def command(
    model: Annotated[Optional[str], typer.Option("--model", help="model.tar.gz / model dir URI, or 'latest'.")] = "latest",
    endpoint: Annotated[Optional[str], typer.Option("--endpoint", help="Endpoint name (default: deploy.endpoint_name).")] = None,
    port: Annotated[Optional[int], typer.Option("--port", help="Local port (default: deploy.port).")] = None,
    ttl: Annotated[Optional[str], typer.Option("--ttl", help="Delete the endpoint after this long, e.g. 30m, 2h.")] = None,
    dry_run: DryRunOpt = False,
    wait: WaitOpt = True,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    backend: BackendOpt = None,
    json_out: JsonOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    Session.start(
        config, set_, backend, json_out, verbose, {"deploy.endpoint_name": endpoint, "deploy.port": port, "deploy.ttl": ttl}
    )
    raise NotBuiltError("`dogbreed deploy` is not built yet")
