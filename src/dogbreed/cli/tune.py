"""Search hyperparameters: Optuna locally, a HyperparameterTuner on SageMaker."""

from __future__ import annotations

from typing import Annotated, Any, Optional

import typer

from dogbreed.cli.options import BackendOpt, ConfigOpt, DryRunOpt, JsonOpt, SetOpt, VerboseOpt, WaitOpt
from dogbreed.cli.session import Session

NAME = "tune"
EXAMPLE = "dogbreed tune -c configs/local.yaml -c configs/hpo.yaml"


def _render(answer: dict[str, Any]):
    def render(console) -> None:
        from dogbreed.cli.trial_table import format_params

        best = answer.get("best")
        if best:
            metric = answer["objective"]["metric"]
            console.print(
                f"best trial {best['name']}: {metric}={best['objective']:.4f} ({format_params(best['params'])}); "
                f"train it with: dogbreed train --from-tuning {answer['tuning_job']}",
                highlight=False,
            )
        else:
            console.print(f"tuning job {answer['tuning_job']}: {answer['state']}", highlight=False)

    return render


def command(
    name: Annotated[Optional[str], typer.Option("--name", help="Tuning job name; an existing name resumes it.")] = None,
    dataset: Annotated[Optional[str], typer.Option("--dataset", help="Dataset URI (default: the latest ingested).")] = None,
    dry_run: DryRunOpt = False,
    wait: WaitOpt = True,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    backend: BackendOpt = None,
    json_out: JsonOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    from dogbreed.cli.trial_table import TrialView
    from dogbreed.workflows import tune as workflow

    session = Session.start(config, set_, backend, json_out, verbose, {"tune.name": name})
    ledger = session.workspace.ledger
    runner = session.backend()
    plan = workflow.plan(session.config, ledger, runner, dataset=dataset)
    if plan.budget != session.config.tune.max_jobs:  # Grid: the grid sets the count, as on SageMaker
        session.reporter.info(
            f"Grid search runs every point of its grid: {plan.budget} trials (tune.max_jobs {session.config.tune.max_jobs} "
            "does not apply to Grid, as on SageMaker)"
        )
    if dry_run:
        session.emit(workflow.dry_run(runner, plan))
        return
    if plan.resumed:
        session.reporter.info(f"resuming tuning job {plan.request.name}")
    started = workflow.start(ledger, runner, plan, wait=wait)
    if not wait:
        answer = workflow.started_answer(runner, plan, started)
        session.emit(answer, _render(answer))
        return
    tune = plan.request.config.tune
    title = f"tuning job {plan.request.name} · {tune.strategy} · {plan.budget} trials"
    with TrialView(session.stderr, title, tune.objective.metric, plain=session.json_mode, total=plan.budget) as view:
        answer = workflow.wait(ledger, runner, plan, view.show)
    session.emit(answer, _render(answer))
