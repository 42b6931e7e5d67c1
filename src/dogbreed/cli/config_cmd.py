"""`dogbreed config show|schema`: the effective config, and a JSON Schema for editors."""

from __future__ import annotations

import json

import typer

from dogbreed.cli.options import BackendOpt, ConfigOpt, JsonOpt, SetOpt, VerboseOpt
from dogbreed.cli.session import Session

# Plain help, as the main app's (cli/app.py says why).
app = typer.Typer(help="Inspect the effective configuration and its schema.", no_args_is_help=True, rich_markup_mode=None)


@app.command("show", epilog="Example: dogbreed config show -c configs/local.yaml --set train.lr=0.001")
def show(
    config: ConfigOpt = None,
    set_: SetOpt = None,
    backend: BackendOpt = None,
    json_out: JsonOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Print the effective config: defaults < --config files < --set < flags."""
    from dogbreed.config.loader import dump_yaml

    session = Session.start(config, set_, backend, json_out, verbose)
    if json_out:
        session.emit(session.config.model_dump(mode="json"))
        return
    from rich.syntax import Syntax

    session.stdout.print(Syntax(dump_yaml(session.config), "yaml", background_color="default"))


@app.command("schema", epilog="Example: dogbreed config schema > dogbreed.schema.json")
def schema() -> None:
    """Print the config's JSON Schema (point your editor's YAML language server at it)."""
    from dogbreed.config.schema import Config

    document = Config.model_json_schema()
    document["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    document["title"] = "dogbreed config"
    print(json.dumps(document, indent=2))
