"""Serve a trained model behind SageMaker's endpoint contract (/ping, /invocations)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from dogbreed.cli.options import BackendOpt, ConfigOpt, DryRunOpt, JsonOpt, SetOpt, VerboseOpt, WaitOpt
from dogbreed.cli.session import Session

NAME = "deploy"
EXAMPLE = "dogbreed deploy --ttl 30m"


def _render(answer: dict):
    def render(console) -> None:
        from rich.text import Text

        if answer.get("dry_run"):
            import shlex

            from rich.pretty import Pretty

            console.print(
                Text.assemble(
                    ("Plan", "bold"), " for endpoint ", (answer["endpoint"], "bold"), f" ({answer['backend']}); nothing started:"
                )
            )
            for key, value in answer["plan"].items():
                if key == "command":
                    console.print(f"  command: {shlex.join(value)}", highlight=False)
                elif isinstance(value, (dict, list)):
                    console.print(f"  {key}:", Pretty(value), highlight=False)
                elif value is not None and key not in ("endpoint", "backend"):
                    console.print(f"  {key}: {value}", highlight=False)
            return
        where = answer.get("url") or answer.get("arn")
        console.print(
            Text.assemble(
                "Endpoint ",
                (answer["endpoint"], "bold"),
                f" ({answer['backend']}) is {answer['state']} at {where}; expires {answer.get('expires_at') or 'never'}.",
            ),
            highlight=False,
        )
        console.print(f"Try it: dogbreed predict IMAGE --endpoint {answer['endpoint']}", highlight=False)

    return render


def command(
    model: Annotated[Optional[str], typer.Option("--model", help="model.tar.gz / model dir URI, or 'latest'.")] = "latest",
    endpoint: Annotated[Optional[str], typer.Option("--endpoint", help="Endpoint name (default: deploy.endpoint_name).")] = None,
    port: Annotated[Optional[int], typer.Option("--port", help="Local port (default: deploy.port).")] = None,
    ttl: Annotated[Optional[str], typer.Option("--ttl", help="Delete the endpoint after this long, e.g. 30m, 2h.")] = None,
    trust_code: Annotated[
        bool,
        typer.Option(
            "--trust-code",
            help="Serve a model whose code/ is not this dogbreed's handler (another version, edited, "
            "or foreign): its code/inference.py runs on this machine.",
        ),
    ] = False,
    dry_run: DryRunOpt = False,
    wait: WaitOpt = True,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    backend: BackendOpt = None,
    json_out: JsonOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    session = Session.start(
        config, set_, backend, json_out, verbose, {"deploy.endpoint_name": endpoint, "deploy.port": port, "deploy.ttl": ttl}
    )
    from dogbreed.workflows.deploy import deploy

    result = deploy(
        session.config, session.backend(), session.workspace.ledger, model, wait=wait, dry_run=dry_run, trust_code=trust_code
    )
    answer = result.to_json()
    session.emit(answer, _render(answer))
