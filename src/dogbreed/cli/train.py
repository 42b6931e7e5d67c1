"""Fine-tune the model: one job of the training package, locally or on SageMaker."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from dogbreed.cli.options import BackendOpt, ConfigOpt, DryRunOpt, JsonOpt, SetOpt, VerboseOpt, WaitOpt
from dogbreed.cli.session import Session
from dogbreed.errors import NotBuiltError

NAME = "train"


def command(
    from_tuning: Annotated[
        Optional[str], typer.Option("--from-tuning", help="Use the best parameters of this tuning job, or 'latest'.")
    ] = None,
    dataset: Annotated[Optional[str], typer.Option("--dataset", help="Dataset URI (default: the latest ingested).")] = None,
    name: Annotated[Optional[str], typer.Option("--name", help="Job name; reusing a name resumes that job.")] = None,
    dry_run: DryRunOpt = False,
    wait: WaitOpt = True,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    backend: BackendOpt = None,
    json_out: JsonOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    Session.start(config, set_, backend, json_out, verbose)
    raise NotBuiltError("`dogbreed train` is not built yet")
