"""deploy: put a trained model behind an endpoint that expires, or print the plan.

Backend-agnostic: the backend starts the endpoint; this step finds the model ("latest" is
the newest model the ledger knows), computes the expiry from deploy.ttl, and is the one
writer of the endpoint's ledger row. Intent first: the row is written (state creating, with
what the backend needs to find and stop it: pid and port, or the ARN) as soon as the
backend says the endpoint exists, before the model loads, then confirmed. A deploy killed
in between leaves an endpoint that `status` lists and `teardown` finds.

One deploy of a name at a time per workspace (a JobLock beside the ledger, held from reading
what serves now to recording what replaced it): two run at once would each replace what
they saw, and the loser's server would run on with no ledger row that `teardown` can find.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from dogbreed.backends.base import Backend, DeployRequest, EndpointInfo
from dogbreed.config import Config
from dogbreed.config.schema import parse_duration
from dogbreed.errors import BusyError, NotFoundError
from dogbreed.job_lock import JobLock
from dogbreed.ledger import Ledger, Resource, now
from dogbreed.workflows.train import sync as sync_training


@dataclass
class DeployResult:
    endpoint: EndpointInfo | None = None
    plan: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        if self.plan is not None:
            keys = ("endpoint", "backend", "url", "arn", "expires_at")
            return {"dry_run": True, **{key: self.plan.get(key) for key in keys}, "plan": self.plan}
        assert self.endpoint is not None
        return self.endpoint.to_json()


def resolve_model(ledger: Ledger, model: str | None) -> tuple[str, str | None]:
    """(model URI, training job) for --model: a URI as given, or 'latest' from the ledger."""
    if model and model != "latest":
        return model, None
    found = [record for record in ledger.list("model") if record.live and record.uri]
    if not found:
        raise NotFoundError(
            "no trained model in the ledger; run `dogbreed train` first, or pass --model PATH (model.tar.gz or model dir)"
        )
    latest = found[-1]
    return latest.uri, latest.parent or latest.meta.get("training_job")


def build_request(
    config: Config, ledger: Ledger, model: str | None, at: datetime | None = None, trust_code: bool = False
) -> DeployRequest:
    model_uri, training_job = resolve_model(ledger, model)
    return DeployRequest(
        endpoint_name=config.deploy.endpoint_name,
        model_uri=model_uri,
        config=config,
        expires_at=(at or now()) + parse_duration(config.deploy.ttl),
        training_job=training_job,
        trust_code=trust_code,
    )


def deploy_lock(ledger: Ledger, backend_name: str, name: str) -> JobLock:
    """Held by the one deploy of an endpoint name from reading what serves to recording what
    replaced it; teardown takes it too, so it never deletes an endpoint a deploy is starting."""
    return JobLock(ledger.path.parent / "locks" / f"deploy-{backend_name}-{name}.lock", f"a deploy of endpoint {name}")


def deploy(
    config: Config,
    backend: Backend,
    ledger: Ledger,
    model: str | None = "latest",
    wait: bool = True,
    dry_run: bool = False,
    trust_code: bool = False,
) -> DeployResult:
    if not dry_run and (not model or model == "latest"):
        # A job trained with --no-wait may have finished since: record its model first.
        # (Not in a dry run: that makes no backend call at all.)
        sync_training(ledger, backend)
    request = build_request(config, ledger, model, trust_code=trust_code)
    if dry_run:
        return DeployResult(plan=backend.plan_deploy(replace(request, serving=_serving(ledger, backend.name, request))))
    name = request.endpoint_name
    lock = deploy_lock(ledger, backend.name, name)
    try:
        fd = lock.acquire()  # os.open's descriptors are not inherited: the server never holds it
    except BusyError as exc:
        raise BusyError(f"{exc}; wait for it to end, then deploy again (`dogbreed status` shows the endpoint)") from None
    try:
        previous = ledger.get("endpoint", name, backend.name)
        recorded: list[EndpointInfo] = []

        def created(info: EndpointInfo) -> None:
            _record(ledger, backend, request, info)
            recorded.append(info)

        try:
            info = backend.deploy(request, wait=wait, on_created=created)
        except BaseException:
            if recorded:
                _settle_failed(ledger, backend, name, previous)
            raise
        _record(ledger, backend, request, info)
        return DeployResult(endpoint=info)
    finally:
        os.close(fd)


def _serving(ledger: Ledger, backend_name: str, request: DeployRequest) -> dict[str, str] | None:
    """What the ledger says serves under the endpoint's name, when it is live there: a dry
    run plans a redeploy from it (it asks the backend nothing)."""
    record = ledger.get("endpoint", request.endpoint_name, backend_name)
    if record is None or not record.live or not record.meta.get("endpoint_config"):
        return None
    return {"model": record.meta.get("model"), "endpoint_config": record.meta["endpoint_config"]}


def _record(ledger: Ledger, backend: Backend, request: DeployRequest, info: EndpointInfo) -> None:
    ledger.record(
        "endpoint",
        info.name,
        backend.name,
        uri=info.url or info.arn,
        state=info.state,
        parent=request.training_job,
        expires_at=info.expires_at or request.expires_at,
        meta={"model_uri": request.model_uri, "instance_type": info.instance_type, **info.extra, **info.record},
    )


def _settle_failed(ledger: Ledger, backend: Backend, name: str, previous: Resource | None) -> None:
    """After a deploy that failed once its endpoint existed: the row names what is left. A
    server this deploy was replacing may still serve (its row comes back); what the backend
    created is stopped or failed, and says so."""
    if previous is not None and previous.live:
        ledger.record(
            "endpoint",
            name,
            backend.name,
            uri=previous.uri,
            state=previous.state,
            parent=previous.parent,
            expires_at=previous.expires_at,
            meta=previous.meta,
        )
    try:
        seen = backend.describe_endpoint(name).state
    except Exception:  # noqa: BLE001 - the deploy's own error is the one to report
        return
    current = ledger.get("endpoint", name, backend.name)
    if current is not None and current.state != seen:
        ledger.update("endpoint", name, backend.name, state=seen, meta={"stopped": "deploy failed"} if seen == "gone" else {})
