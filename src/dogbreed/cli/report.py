"""Plot what a training or tuning job did and judge it by rules, as one HTML file."""

from __future__ import annotations

from typing import Annotated, Any, Optional

import typer

from dogbreed.cli.options import BackendOpt, ConfigOpt, JsonOpt, SetOpt, VerboseOpt
from dogbreed.cli.session import Session

NAME = "report"
EXAMPLE = "dogbreed report --fail-on-rules"

_STYLES = {"ok": "green", "issue": "bold red", "not-applicable": "dim", "no-data": "yellow"}


def _render(answer: dict[str, Any]):
    def render(console) -> None:
        from rich.table import Table
        from rich.text import Text

        table = Table(title=f"{answer['kind']} {answer['job']} · rules", title_justify="left")
        table.add_column("rule", no_wrap=True)
        table.add_column("verdict", no_wrap=True)
        table.add_column("what it saw", overflow="fold")
        table.add_column("what to do", overflow="fold")
        for rule in answer["rules"]:
            style = _STYLES.get(rule["status"], "white")
            table.add_row(rule["name"], Text(rule["status"], style=style), rule["detail"], rule["advice"])
        if answer.get("verdict"):
            console.print(Text.assemble(("verdict:", "bold"), " ", answer["verdict"]["text"]), highlight=False)
        summary = answer.get("summary") or {}
        numbers = [
            f"{key} {summary[key]:.4g}"
            for key in ("valid_acc", "valid_loss", "test_acc", "test_loss")
            if summary.get(key) is not None
        ]
        if numbers:
            console.print(f"best epoch {summary.get('best_epoch')}: " + ", ".join(numbers), highlight=False)
        evaluation = answer.get("evaluation") or {}
        if evaluation.get("top1") is not None and evaluation.get("top5") is not None:
            ece = (evaluation.get("calibration") or {}).get("ece")
            pairs = evaluation.get("confused_pairs") or []
            line = f"test top-1 {evaluation['top1']:.1%}, top-5 {evaluation['top5']:.1%}"
            if isinstance(ece, (int, float)):
                line += f", calibration error {ece:.3f}"
            if pairs:
                line += f"; most confused: {pairs[0]['a']} / {pairs[0]['b']} ({pairs[0]['total']})"
            console.print(line, highlight=False)
        if answer["rules"]:
            console.print(table)
        for note in answer["notes"]:
            console.print(Text.assemble(("note:", "dim"), " ", note), highlight=False)
        console.print(f"report: {answer['report_uri']}", highlight=False, soft_wrap=True)

    return render


def command(
    job: Annotated[Optional[str], typer.Argument(help="Training job (default: the latest).")] = None,
    tuning: Annotated[Optional[str], typer.Option("--tuning", help="Report on this tuning job instead ('latest' works).")] = None,
    fail_on_rules: Annotated[bool, typer.Option("--fail-on-rules", help="Exit 1 when a rule flags an issue.")] = False,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    backend: BackendOpt = None,
    json_out: JsonOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    from dogbreed.errors import DogbreedError, UsageError
    from dogbreed.workflows import report as workflow

    session = Session.start(config, set_, backend, json_out, verbose)
    if job and tuning:
        raise UsageError("give a training JOB or --tuning NAME, not both")

    options = {"backend_for": session.backend, "reporter": session.reporter}
    if tuning:
        result = workflow.tuning_report(session.config, session.workspace, tuning, **options)
    else:
        result = workflow.training_report(session.config, session.workspace, job, **options)
    answer = result.to_json()
    session.emit(answer, _render(answer))
    if fail_on_rules and result.issues:
        names = ", ".join(rule.name for rule in result.issues)
        raise DogbreedError(f"{len(result.issues)} rule(s) found issues in {result.job}: {names}; see {result.html}")
