"""Stop and delete endpoints (and what belongs to them) so nothing keeps billing.

Only endpoints this tool created are touched: in the ledger, or tagged for this project on
SageMaker. Asks first on a terminal unless --yes; never asks when stdin is not a terminal.
Running it twice is fine: the second run reports the names as not found and succeeds. A name
that matches nothing (a typo) is exit 1 with the closest live names, after the answer (with
--json, the JSON document still lists it under not_found); --ignore-missing makes it exit 0.
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from dogbreed.cli.options import BackendOpt, ConfigOpt, DryRunOpt, JsonOpt, SetOpt, VerboseOpt, YesOpt
from dogbreed.cli.session import Session

NAME = "teardown"
EXAMPLE = "dogbreed teardown dogbreed-demo --yes"


def _render(answer: dict):
    def render(console) -> None:
        if answer["dry_run"]:
            console.print(f"Would delete: {', '.join(answer['would_delete']) or 'nothing'}", highlight=False)
            if answer.get("would_stop"):
                console.print(f"Would stop transform jobs: {', '.join(answer['would_stop'])}", highlight=False)
            if answer.get("would_sweep"):
                console.print(f"With --all, everything tagged: {', '.join(answer['would_sweep'])}", highlight=False)
        else:
            console.print(f"Deleted: {', '.join(answer['deleted']) or 'nothing'}", highlight=False)
            if answer.get("stopped"):
                console.print(f"Stopped transform jobs: {', '.join(answer['stopped'])}", highlight=False)
            if answer.get("swept"):
                console.print(f"Also deleted (left behind): {', '.join(answer['swept'])}", highlight=False)
        if answer["not_found"]:
            console.print(f"Not found: {', '.join(answer['not_found'])}", highlight=False)

    return render


def command(
    names: Annotated[
        Optional[list[str]], typer.Argument(help="Endpoint names, or running transform jobs (default: the latest endpoint).")
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every live endpoint and running transform job this tool created.")] = False,
    expired: Annotated[
        bool, typer.Option("--expired", help="Every endpoint whose TTL (deploy.ttl) has passed; for a schedule.")
    ] = False,
    ignore_missing: Annotated[
        bool,
        typer.Option("--ignore-missing", help="A name that matches no endpoint is not an error (exit 0, listed as not found)."),
    ] = False,
    yes: YesOpt = False,
    dry_run: DryRunOpt = False,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    backend: BackendOpt = None,
    json_out: JsonOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    session = Session.start(config, set_, backend, json_out, verbose)
    from dogbreed.workflows.teardown import listed_resources, select, teardown

    ledger = session.workspace.ledger
    # A backend that lists this project's endpoints by tags (SageMaker) adds those the ledger
    # does not know (listed_endpoints is empty for one that cannot list, as local).
    backend_ = session.backend() if (all_ or expired or names) else None
    rows = listed_resources(backend_)
    listed = [row for row in rows if row["kind"] == "endpoint"]
    plan = select(
        ledger,
        session.config.backend,
        names or [],
        all_,
        session.reporter,
        expired=expired,
        listed=listed,
        listed_jobs=[row for row in rows if row["kind"] == "transform-job"],
    )
    if (plan.targets or plan.jobs) and not (yes or dry_run) and session.interactive:
        where = session.config.backend
        what = [f"delete {len(plan.targets)} {where} endpoint(s): {', '.join(plan.targets)}"] if plan.targets else []
        what += [f"stop {len(plan.jobs)} {where} transform job(s): {', '.join(plan.jobs)}"] if plan.jobs else []
        question = " and ".join(what)
        question = question[0].upper() + question[1:] + "?"
        if not typer.confirm(question, default=False, err=True):
            raise typer.Abort()
    if backend_ is None and (plan.targets or plan.jobs) and not dry_run:
        backend_ = session.backend()
    result = teardown(backend_, ledger, plan, dry_run=dry_run, reporter=session.reporter)
    session.emit(result.to_json(), _render(result.to_json()))
    busy = result.busy_error()
    if busy is not None:
        raise busy  # after the answer, as below: the other names are deleted all the same
    missing = None if ignore_missing else plan.missing_error(session.config.backend)
    if missing is not None:
        raise missing  # after the answer: the names that matched are deleted all the same
