"""List what is live: endpoints, running jobs; their age, expiry and cost per hour."""

from __future__ import annotations

from dogbreed.cli.options import BackendOpt, ConfigOpt, JsonOpt, SetOpt, VerboseOpt
from dogbreed.cli.session import Session
from dogbreed.errors import NotBuiltError

NAME = "status"


def command(
    config: ConfigOpt = None,
    set_: SetOpt = None,
    backend: BackendOpt = None,
    json_out: JsonOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    Session.start(config, set_, backend, json_out, verbose)
    raise NotBuiltError("`dogbreed status` is not built yet")
