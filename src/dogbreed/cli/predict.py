"""Ask an endpoint which breeds are in these photos.

Exit code 1 when any image failed (after every answer is printed), so scripts and CI notice;
the failures are listed in the table and under "errors" in --json.
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from dogbreed.cli.options import BackendOpt, ConfigOpt, JsonOpt, SetOpt, VerboseOpt
from dogbreed.cli.session import Session
from dogbreed.errors import DogbreedError

NAME = "predict"
EXAMPLE = "dogbreed predict examples/predict --top-k 3"


def _render(answer: dict):
    def render(console) -> None:
        from rich.table import Table

        table = Table(title=f"Endpoint {answer['endpoint']} ({answer['backend']})", title_justify="left")
        table.add_column("image", overflow="fold")
        table.add_column("breed")
        table.add_column("probability", justify="right")
        table.add_column("also")
        for row in answer["predictions"]:
            best, *rest = row["top"] or [{"label": "?", "probability": 0.0}]
            if row.get("is_dog") is False:  # under deploy.dog_threshold: no breed is named
                table.add_row(row["image"], "not a dog", "", f"dog probability {row['dog_probability']:.1%}", style="dim")
                continue
            also = ", ".join(f"{t['label']} {t['probability']:.0%}" for t in rest)
            table.add_row(row["image"], best["label"], f"{best['probability']:.1%}", also)
        for row in answer["errors"]:
            table.add_row(row["image"], "error", "", row["error"], style="red")
        console.print(table)

    return render


def command(
    images: Annotated[list[str], typer.Argument(help="Image files, folders or globs.")],
    endpoint: Annotated[Optional[str], typer.Option("--endpoint", help="Endpoint name (default: the latest deployed).")] = None,
    top_k: Annotated[
        Optional[int], typer.Option("--top-k", "-k", min=1, help="Breeds per image (default: deploy.top_k).")
    ] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    backend: BackendOpt = None,
    json_out: JsonOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    session = Session.start(config, set_, backend, json_out, verbose, {"deploy.top_k": top_k})
    from dogbreed.workflows.predict import predict

    result = predict(
        session.backend(),
        session.workspace.ledger,
        images,
        endpoint=endpoint,
        top_k=session.config.deploy.top_k,
        concurrency=session.config.deploy.workers,
        reporter=session.reporter,
        dog_threshold=session.config.deploy.dog_threshold,
        max_file_bytes=session.config.data.max_image_bytes,
    )
    session.emit(result.to_json(), _render(result.to_json()))
    if result.errors:
        failed, total = len(result.errors), len(result.errors) + len(result.predictions)
        where = 'under "errors" in the JSON' if json_out else "in the table"
        raise DogbreedError(f"{failed} of {total} images failed; see {where}")
