"""Stop and delete endpoints (and what belongs to them) so nothing keeps billing.

Only endpoints this tool created (in the ledger) are touched. Asks first on a terminal unless
--yes; never asks when stdin is not a terminal. Running it twice is fine: the second run
reports the names as not found and succeeds.
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from dogbreed.cli.options import BackendOpt, ConfigOpt, DryRunOpt, JsonOpt, SetOpt, VerboseOpt, YesOpt
from dogbreed.cli.session import Session

NAME = "teardown"


def _render(answer: dict):
    def render(console) -> None:
        if answer["dry_run"]:
            console.print(f"Would delete: {', '.join(answer['would_delete']) or 'nothing'}", highlight=False)
        else:
            console.print(f"Deleted: {', '.join(answer['deleted']) or 'nothing'}", highlight=False)
        if answer["not_found"]:
            console.print(f"Not found: {', '.join(answer['not_found'])}", highlight=False)

    return render


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
    session = Session.start(config, set_, backend, json_out, verbose)
    from dogbreed.backends import get_backend
    from dogbreed.workflows.teardown import select, teardown

    ledger = session.workspace.ledger
    plan = select(ledger, session.config.backend, names or [], all_, session.reporter)
    if plan.targets and not (yes or dry_run) and session.interactive:
        question = f"Delete {len(plan.targets)} {session.config.backend} endpoint(s): {', '.join(plan.targets)}?"
        if not typer.confirm(question, default=False, err=True):
            raise typer.Abort()
    backend_ = get_backend(session) if plan.targets and not dry_run else None
    result = teardown(backend_, ledger, plan, dry_run=dry_run, reporter=session.reporter)
    session.emit(result.to_json(), _render(result.to_json()))
