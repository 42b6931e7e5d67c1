"""Check, split and store a dog photo dataset (folder, archive or URL) locally or on S3."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from dogbreed.cli.options import BackendOpt, ConfigOpt, JsonOpt, SetOpt, VerboseOpt
from dogbreed.cli.session import Session
from dogbreed.errors import NotBuiltError

NAME = "ingest"


def command(
    source: Annotated[Optional[str], typer.Argument(help="Folder, .zip/.tar/.tar.gz, or http(s) URL (default: data.source).")] = None,
    dest: Annotated[Optional[str], typer.Option("--dest", help="Local folder or s3://bucket/prefix (default: data.uri).")] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Fail on any problem instead of excluding the file.")] = False,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    backend: BackendOpt = None,
    json_out: JsonOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    session = Session.start(config, set_, backend, json_out, verbose, {"data.source": source, "data.uri": dest})
    raise NotBuiltError("`dogbreed ingest` is not built yet")
