"""Score many photos with no endpoint: in this process (local) or a SageMaker Batch Transform job.

Writes one row per image to the scores file (CSV or JSON Lines, from its suffix or --format):
the breeds, their probabilities and the dog probability, or the image's error. Rerun with
the same --output to resume a run that stopped. Nothing keeps running or billing afterwards.
Exit code 1 when any image failed, after every row is written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from dogbreed.cli.options import BackendOpt, ConfigOpt, DryRunOpt, JsonOpt, SetOpt, VerboseOpt, WaitOpt
from dogbreed.cli.session import Session
from dogbreed.errors import DogbreedError

NAME = "transform"
EXAMPLE = "dogbreed transform examples/predict --output scores.csv"


def _render(answer: dict):
    def render(console) -> None:
        if answer.get("dry_run"):
            from rich.pretty import Pretty

            console.print(f"Plan for transform job {answer['transform_job']} ({answer['backend']}); nothing started:")
            for key, value in answer["plan"].items():
                if isinstance(value, (dict, list)):
                    console.print(f"  {key}:", Pretty(value), highlight=False)
                elif value is not None and key not in ("transform_job", "backend"):
                    console.print(f"  {key}: {value}", highlight=False)
            return
        if answer["state"] == "InProgress":
            console.print(
                f"Transform job {answer['transform_job']} is running on SageMaker ({answer['instance_type']} x "
                f"{answer['instance_count']}); its answers go to {answer['output_uri']}. It stops by itself; "
                f"the same command with --name {answer['transform_job']} waits for it and writes its rows to {answer['output']}.",
                highlight=False,
            )
            return
        console.print(
            f"Scored {answer['scored']} images into {answer['output']} ({answer['skipped']} already there, "
            f"{len(answer['errors'])} error{'' if len(answer['errors']) == 1 else 's'}) with transform job "
            f"{answer['transform_job']} ({answer['backend']}).",
            highlight=False,
        )
        for row in answer["errors"][:20]:
            console.print(f"  error: {row['image']}: {row['error']}", highlight=False)
        if len(answer["errors"]) > 20:
            console.print(f"  ... and {len(answer['errors']) - 20} more: see the scores file", highlight=False)

    return render


def command(
    sources: Annotated[list[str], typer.Argument(help="Image files, folders, globs or s3:// prefixes.")],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="The scores file: .csv or .jsonl (rows are appended; a rerun resumes).")
    ] = Path("scores.csv"),
    fmt: Annotated[Optional[str], typer.Option("--format", help="csv or jsonl (default: from --output's suffix).")] = None,
    model: Annotated[Optional[str], typer.Option("--model", help="model.tar.gz / model dir URI, or 'latest'.")] = "latest",
    top_k: Annotated[
        Optional[int], typer.Option("--top-k", "-k", min=1, help="Breeds per image (default: deploy.top_k).")
    ] = None,
    name: Annotated[
        Optional[str],
        typer.Option(
            "--name", help="Job name (default: dogbreed-transform-<time>-<id>); an existing job's name collects its answers."
        ),
    ] = None,
    restart: Annotated[bool, typer.Option("--restart", help="Start the scores file over instead of resuming it.")] = False,
    trust_code: Annotated[
        bool,
        typer.Option("--trust-code", help="Score with a model whose code/ is not this dogbreed's handler (it runs here)."),
    ] = False,
    dry_run: DryRunOpt = False,
    wait: WaitOpt = True,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    backend: BackendOpt = None,
    json_out: JsonOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    session = Session.start(config, set_, backend, json_out, verbose, {"deploy.top_k": top_k})
    from dogbreed.workflows.transform import transform

    result = transform(
        session.config,
        session.backend(),
        session.workspace.ledger,
        sources,
        output,
        model=model,
        fmt=fmt,
        top_k=session.config.deploy.top_k,
        name=name,
        restart=restart,
        wait=wait,
        dry_run=dry_run,
        trust_code=trust_code,
    )
    answer = result.to_json()
    session.emit(answer, _render(answer))
    if result.outcome is None:
        return
    if result.outcome.state not in ("Completed", "InProgress"):
        raise DogbreedError(
            f"transform job {result.outcome.name} {result.outcome.state.lower()}: {result.outcome.failure or 'no reason given'}"
        )
    if result.outcome.errors:
        failed = len(result.outcome.errors)
        where = 'under "errors" in the JSON' if json_out else f"their rows in {output}"
        raise DogbreedError(
            f"{failed} of {result.outcome.scored + result.outcome.skipped} images could not be scored; see {where}"
        )
