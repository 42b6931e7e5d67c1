"""Check, split and store a dog photo dataset (folder, archive or URL) locally or on S3."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Optional

import typer

from dogbreed.cli.options import BackendOpt, ConfigOpt, JsonOpt, SetOpt, VerboseOpt
from dogbreed.cli.session import Session

if TYPE_CHECKING:
    from rich.console import Console

    from dogbreed.workflows.ingest import IngestResult

NAME = "ingest"
EXAMPLE = "dogbreed ingest examples/dogs -c configs/local.yaml"
_SHOWN_PROBLEMS = 20


def command(
    source: Annotated[
        Optional[str], typer.Argument(help="Folder, .zip/.tar/.tar.gz, or http(s) URL (default: data.source).")
    ] = None,
    dest: Annotated[Optional[str], typer.Option("--dest", help="Local folder or s3://bucket/prefix (default: data.uri).")] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Fail on any problem instead of excluding the file.")] = False,
    prune: Annotated[
        bool, typer.Option("--prune", help="Delete files in the destination's split folders that this dataset does not list.")
    ] = False,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    backend: BackendOpt = None,
    json_out: JsonOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    session = Session.start(config, set_, backend, json_out, verbose, {"data.source": source, "data.uri": dest})
    # Imported here: the workflow pulls in Pillow (and boto3 for S3), which `dogbreed --help` must not pay for.
    from dogbreed.workflows.ingest import ingest

    result = ingest(
        session.config, session.workspace, strict=strict, prune=prune, reporter=session.reporter, backend=session.backend()
    )
    session.emit(result.to_json(), render=lambda console: _render(result, console))


def _render(result: IngestResult, console: Console) -> None:
    from rich.table import Table

    table = Table(title=f"dataset {result.name}", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    table.add_row("stored at", result.dataset_uri)
    table.add_row("layout", result.layout)
    table.add_row("classes", str(result.num_classes))
    table.add_row("train / valid / test", " / ".join(str(result.splits[s]) for s in ("train", "valid", "test")))
    table.add_row("uploaded / skipped", f"{result.uploaded} / {result.skipped}")
    table.add_row("problems", str(len(result.problems)))
    if result.stale or result.pruned:
        table.add_row("stale files", f"{result.pruned} pruned" if result.pruned else f"{result.stale} left (--prune)")
    table.add_row("manifest_sha256", result.manifest_sha256)
    table.add_row("took", f"{result.duration_s:.1f} s")
    console.print(table)
    if result.problems:
        problems = Table("file", "problem", title="excluded (see --json for all)", title_justify="left")
        for item in result.problems[:_SHOWN_PROBLEMS]:
            problems.add_row(item["file"], item["problem"])
        if len(result.problems) > _SHOWN_PROBLEMS:
            problems.add_row("…", f"{len(result.problems) - _SHOWN_PROBLEMS} more")
        console.print(problems)
