"""Registers one thin module per command on the app."""

from __future__ import annotations

import typer

from dogbreed.cli import deploy, ingest, predict, report, status, teardown, train, transform, tune


def register(app: typer.Typer) -> None:
    for module in (ingest, tune, train, report, deploy, predict, transform, teardown, status):
        app.command(module.NAME, help=module.__doc__, epilog=f"Example: {module.EXAMPLE}")(module.command)
