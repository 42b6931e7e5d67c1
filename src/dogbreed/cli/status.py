"""List what is live: endpoints, running jobs; their age, expiry and cost per hour
(`--all`: the jobs that ended too).

Each resource of the configured backend is checked against reality (and the ledger
corrected); resources of the other backend are listed from the ledger as unchecked.
"""

from __future__ import annotations

from typing import Annotated

import typer

from dogbreed.cli.options import BackendOpt, ConfigOpt, JsonOpt, SetOpt, VerboseOpt
from dogbreed.cli.session import Session

NAME = "status"
EXAMPLE = "dogbreed status --json"
WIDE_ENOUGH = 120  # columns for the table with its "where" column


def _duration(seconds: int | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 0:
        return "expired"
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


def _where(resource: dict) -> str:
    return resource.get("url") or resource.get("arn") or ""


def _render(answer: dict):
    def render(console) -> None:
        from rich.table import Table

        if not answer["resources"]:
            console.print("Nothing is running." if not answer.get("all") else "Nothing is running, and no job has run.")
            return
        # A URL or ARN is the widest cell by far: in a terminal narrower than WIDE_ENOUGH (or a
        # CI log's 80 columns) it goes below the table, so that no name is cut to "dogbree…".
        wide = console.width >= WIDE_ENOUGH
        table = Table(title_justify="left")
        for column in ("kind", "name", "backend", "state", "age", "expires in", "$/hour", *(("where",) if wide else ())):
            # A name is what `teardown NAME` takes: never cut. A long ARN folds onto a second line.
            table.add_column(
                column,
                justify="right" if column == "$/hour" else "left",
                no_wrap=column == "name",
                overflow="fold" if column == "where" else "ellipsis",
            )
        for r in answer["resources"]:
            state = r["state"] if r.get("checked") or r.get("ended") else f"{r['state']} (unchecked)"
            table.add_row(
                r["kind"],
                r["name"],
                r["backend"],
                state,
                _duration(r.get("age_s")),
                _duration(r.get("expires_in_s")),  # rows found on the backend alone may lack it
                f"{r['est_cost_per_hour']:.3f}",
                *((_where(r),) if wide else ()),
            )
        console.print(table)
        if not wide:
            for r in answer["resources"]:
                if _where(r):
                    console.print(f"{r['name']}: {_where(r)}", highlight=False, soft_wrap=False, overflow="fold")
        live = [r for r in answer["resources"] if not r.get("ended") and r["state"] not in ("gone", "deleted")]
        if not live:
            console.print("Nothing is running.")
            return
        total = sum(r["est_cost_per_hour"] for r in live)
        console.print(f"Estimated total: ${total:.2f}/hour", highlight=False)

    return render


def command(
    config: ConfigOpt = None,
    set_: SetOpt = None,
    backend: BackendOpt = None,
    all_: Annotated[bool, typer.Option("--all", help="Also list the jobs that ended (what `report NAME` takes).")] = False,
    json_out: JsonOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    session = Session.start(config, set_, backend, json_out, verbose)
    from dogbreed.workflows.status import status

    backend_ = session.backend()
    result = status(session.config, session.workspace.ledger, {backend_.name: backend_}, ended=all_)
    answer = result.to_json()
    session.emit(answer, _render({**answer, "all": all_}))
