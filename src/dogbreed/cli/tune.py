"""Search hyperparameters: Optuna locally, a HyperparameterTuner on SageMaker."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from dogbreed.cli.options import BackendOpt, ConfigOpt, DryRunOpt, JsonOpt, SetOpt, VerboseOpt, WaitOpt
from dogbreed.cli.session import Session
from dogbreed.errors import NotBuiltError

NAME = "tune"


def command(
    name: Annotated[Optional[str], typer.Option("--name", help="Tuning job name; an existing name resumes it.")] = None,
    dataset: Annotated[Optional[str], typer.Option("--dataset", help="Dataset URI (default: the latest ingested).")] = None,
    dry_run: DryRunOpt = False,
    wait: WaitOpt = True,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    backend: BackendOpt = None,
    json_out: JsonOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    Session.start(config, set_, backend, json_out, verbose, {"tune.name": name})
    raise NotBuiltError("`dogbreed tune` is not built yet")
