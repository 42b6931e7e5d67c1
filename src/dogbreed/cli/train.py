"""Fine-tune the model: one job of the training package, locally or on SageMaker."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any, Optional

import typer

from dogbreed.cli.options import BackendOpt, ConfigOpt, DryRunOpt, JsonOpt, SetOpt, VerboseOpt, WaitOpt
from dogbreed.cli.session import Session

NAME = "train"
EXAMPLE = "dogbreed train --from-tuning latest -c configs/local.yaml"


def _log_sink(session: Session):
    """The job's log relayed to stderr: styled for a person, plain lines with --json."""
    if session.json_mode:
        return session.reporter.say

    def show(line: str) -> None:
        style = "bold green" if line.startswith(("epoch=", "test_")) else "dim"
        session.stderr.print(line, style=style, highlight=False, markup=False)

    return show


def _render(answer: dict[str, Any]):
    def render(console) -> None:
        from rich.table import Table

        table = Table(title=f"training job {answer['training_job']} · {answer['state']}", show_header=False)
        for key in ("valid_acc", "valid_loss", "test_acc", "test_loss", "best_epoch"):
            if key in answer["metrics"]:
                table.add_row(key, f"{answer['metrics'][key]:.4g}")
        table.add_row("model", str(answer["model_uri"]))
        if answer.get("tuned_params"):
            table.add_row("from tuning", ", ".join(f"{k}={v}" for k, v in answer["tuned_params"].items()))
        console.print(table)

    return render


def _log_uri(runner, name: str) -> str | None:
    """Where the started job's log is (its train.log, or CloudWatch); None if not yet known."""
    from dogbreed.errors import NotFoundError

    try:
        return runner.describe_training(name).log_uri
    except NotFoundError:
        return None  # SageMaker may not list a job it created a moment ago


def _render_started(answer: dict[str, Any]):
    """--no-wait for a person: what started, where its log is and how to follow it."""

    def render(console) -> None:
        name = answer["training_job"]
        log = f"; log: {answer['log_uri']}" if answer.get("log_uri") else ""
        console.print(f"training job {name} started ({answer['backend']}){log}", highlight=False)
        console.print(f"follow it with `dogbreed status`; when it ends, `dogbreed report {name}`", highlight=False)

    return render


def command(
    from_tuning: Annotated[
        Optional[str], typer.Option("--from-tuning", help="Use the best parameters of this tuning job, or 'latest'.")
    ] = None,
    dataset: Annotated[Optional[str], typer.Option("--dataset", help="Dataset URI (default: the latest ingested).")] = None,
    name: Annotated[
        Optional[str],
        typer.Option(
            "--name",
            help="Job name; reusing a name resumes that job (same settings only), or answers with its model when it completed.",
        ),
    ] = None,
    dry_run: DryRunOpt = False,
    wait: WaitOpt = True,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    backend: BackendOpt = None,
    json_out: JsonOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    from dogbreed.errors import DogbreedError
    from dogbreed.workflows import train as workflow

    session = Session.start(config, set_, backend, json_out, verbose)
    ledger = session.workspace.ledger
    runner = session.backend()
    workflow.sync(ledger, runner)
    plan = workflow.plan(session.config, ledger, runner, name=name, dataset=dataset, from_tuning=from_tuning)
    if dry_run:
        session.emit({"dry_run": True, **runner.plan_training(plan.request)})
        return
    done = workflow.already_complete(ledger, runner, plan)
    if done is not None:
        session.reporter.info(
            f"training job {done.name} already completed with these settings; its model is {done.model_uri} "
            "(give another --name to train again)"
        )
        evaluation = workflow.evaluation(ledger, runner, done.name, session.workspace.reports() / done.name)
        answer = workflow.answer(replace(plan, resumed=False), done, runner.name, evaluation)
        session.emit(answer, _render(answer))
        return
    picked = plan.request.name
    plan = workflow.start(ledger, runner, plan)
    if plan.request.name != picked:
        session.reporter.warn(f"training job {picked} is already running elsewhere; started {plan.request.name} instead")
    elif plan.resumed:
        session.reporter.info(f"resuming training job {plan.request.name} from its last checkpoint")
    if not wait:
        started = {
            "training_job": plan.request.name,
            "state": "InProgress",
            "backend": runner.name,
            "model_uri": None,
            "metrics": {},
            "log_uri": _log_uri(runner, plan.request.name),
        }
        session.emit(started, _render_started(started))
        return
    outcome = workflow.wait(ledger, runner, plan.request, _log_sink(session))
    if outcome.state != "Completed":
        raise DogbreedError(
            f"training job {outcome.name} {outcome.state.lower()}: {outcome.failure}; full log: {outcome.log_uri}"
        )
    evaluation = workflow.evaluation(ledger, runner, outcome.name, session.workspace.reports() / outcome.name)
    answer = workflow.answer(plan, outcome, runner.name, evaluation)
    session.emit(answer, _render(answer))
