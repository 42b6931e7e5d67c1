"""Search hyperparameters: Optuna locally, a HyperparameterTuner on SageMaker."""

from __future__ import annotations

from typing import Annotated, Any, Optional

import typer

from dogbreed.cli.options import BackendOpt, ConfigOpt, DryRunOpt, JsonOpt, SetOpt, VerboseOpt, WaitOpt
from dogbreed.cli.session import Session

NAME = "tune"


def _render(answer: dict[str, Any]):
    def render(console) -> None:
        from dogbreed.tuning.live import format_params

        best = answer.get("best")
        metric = answer["objective"]["metric"]
        if best:
            console.print(
                f"best trial {best['name']}: {metric}={best['objective']:.4f} ({format_params(best['params'])}); "
                f"train it with: dogbreed train --from-tuning {answer['tuning_job']}",
                highlight=False,
            )
        else:
            console.print(f"tuning job {answer['tuning_job']}: {answer['state']}", highlight=False)

    return render


def _run_local(session: Session, plan, wait: bool) -> dict[str, Any]:
    from dogbreed.tuning.live import TrialView
    from dogbreed.workflows.tune import LocalTuning

    job = LocalTuning(plan, session.workspace.ledger)
    job.begin()
    for note in job.settle():
        session.reporter.info(note)
    if plan.resumed:
        session.reporter.info(f"resuming tuning job {plan.setup.name}")
    pids = job.launch(detached=not wait)
    if not wait:
        return {"tuning_job": plan.setup.name, "backend": "local", "state": "InProgress",
                "strategy": plan.setup.config.tune.strategy, "workers": pids, "trials": [], "best": None,
                "follow": f"dogbreed tune --name {plan.setup.name}"}
    title = f"tuning job {plan.setup.name} · {plan.setup.config.tune.strategy} · {plan.setup.budget} trials"
    metric = plan.setup.metric
    with TrialView(session.stderr, title, metric, quiet=session.json_mode and not session.verbose) as view:
        return job.run(view.show)


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
    from dogbreed.workflows import tune as workflow

    session = Session.start(config, set_, backend, json_out, verbose, {"tune.name": name})
    plan = workflow.plan(session.config, session.workspace.ledger, dataset=dataset)
    if session.config.backend == "sagemaker":
        from dogbreed.backends import get_backend

        answer = workflow.sagemaker_tuning(plan, session.workspace.ledger, get_backend(session), dry_run=dry_run, wait=wait)
    elif dry_run:
        answer = workflow.local_dry_run(plan)
    else:
        answer = _run_local(session, plan, wait)
    session.emit(answer, None if dry_run or "dry_run" in answer else _render(answer))
