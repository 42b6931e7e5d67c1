"""status: what is running or billing now, checked against reality, with its cost per hour.

Lists endpoints (until deleted or gone) and training, tuning and batch transform jobs in
progress, from the ledger. Each resource on a backend we were given is checked there (endpoint: process and
/ping or DescribeEndpoint; training job: the job's own status) and the ledger is corrected
to what was seen, so a server killed with `kill -9` shows as gone, and a training job that
ended is recorded as `train` records it, model included. Resources of other
backends are listed from the ledger, unchecked (`checked: false`), so a forgotten
SageMaker endpoint still shows up, with its price, on a machine set up for local work.
A backend that can list what it runs (SageMaker, by this project's tags) adds what the
ledger does not know, e.g. resources created from another machine (`in_ledger: false`).
With `ended=True` (`status --all`) the jobs that ended are listed too, after the live rows,
from the ledger as they ended (`ended: true`, nothing to check and nothing billing): what
`report NAME` and `train --from-tuning NAME` take.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from dogbreed.backends import hourly_cost
from dogbreed.backends.base import Backend
from dogbreed.config import Config
from dogbreed.errors import NotFoundError
from dogbreed.ledger import Ledger, Resource, now
from dogbreed.workflows.train import record_outcome

JOB_KINDS = ("training-job", "tuning-job", "transform-job")
ACTIVE_JOB_STATES = ("InProgress", "Stopping", "Starting", "creating", "running", "stopping")


@dataclass
class StatusResult:
    resources: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"resources": self.resources}


def _seconds(later: datetime | None, earlier: datetime | None) -> int | None:
    return int((later - earlier).total_seconds()) if later and earlier else None


def _observe(record: Resource, backend: Backend | None, ledger: Ledger) -> tuple[str, dict[str, Any]]:
    """(state seen, extra fields); updates the ledger when reality differs from it."""
    if backend is None:
        return record.state, {"checked": False}
    if record.kind == "endpoint":
        info = backend.describe_endpoint(record.name)
        if info.state != record.state:
            fresh = ledger.get(record.kind, record.name, record.backend)
            if fresh is not None and fresh.state != info.state:
                ledger.update(record.kind, record.name, record.backend, state=info.state)
        extra = {"checked": True, "url": info.url, "arn": info.arn, "instance_type": info.instance_type}
        return info.state, extra
    if record.kind == "transform-job":
        seen = backend.describe_transform(record.name)
        if seen.state != record.state:
            ledger.update(record.kind, record.name, record.backend, state=seen.state, meta={"failure": seen.failure})
        return seen.state, {"checked": True, "instance_type": seen.instance_type}
    describe = getattr(backend, "describe_training", None) if record.kind == "training-job" else None
    if describe is None:
        return record.state, {"checked": False}
    try:
        outcome = describe(record.name)
    except NotFoundError:
        outcome = None
    state = outcome.state if outcome is not None else "gone"
    if outcome is not None and state != "InProgress":
        record_outcome(ledger, backend, record.name, outcome)  # with its model, for deploy
    elif state != record.state:
        ledger.update(record.kind, record.name, record.backend, state=state)
    return state, {"checked": True}


def status(
    config: Config, ledger: Ledger, backends: Mapping[str, Backend], at: datetime | None = None, ended: bool = False
) -> StatusResult:
    moment = at or now()
    result = StatusResult()
    records = [r for r in ledger.list("endpoint") if r.live]
    records += [r for kind in JOB_KINDS for r in ledger.list(kind, states=ACTIVE_JOB_STATES)]
    known = {(r.kind, r.name, r.backend) for r in records}
    for record in sorted(records, key=lambda r: r.created_at):
        state, extra = _observe(record, backends.get(record.backend), ledger)
        cost = hourly_cost(config, record, extra.get("instance_type"))
        result.resources.append(_row(record, state, cost, moment, {k: v for k, v in extra.items() if k != "instance_type" or v}))
    for backend in backends.values():
        list_resources = getattr(backend, "list_resources", None)
        for row in list_resources() if list_resources else []:
            if (row["kind"], row["name"], row["backend"]) not in known and row["state"] not in ("gone", "deleted"):
                result.resources.append({**row, "checked": True, "in_ledger": False})
    if ended:
        result.resources += _ended_jobs(ledger, known, moment)
    return result


def _row(record: Resource, state: str, cost: float, moment: datetime, extra: Mapping[str, Any]) -> dict[str, Any]:
    """One resource as status lists it."""
    return {
        "kind": record.kind,
        "name": record.name,
        "backend": record.backend,
        "created_at": record.created_at.isoformat(),
        "expires_at": record.expires_at.isoformat() if record.expires_at else None,
        "state": state,
        "est_cost_per_hour": cost,
        "age_s": _seconds(moment, record.created_at),
        "expires_in_s": _seconds(record.expires_at, moment),
        **extra,
    }


def _ended_jobs(ledger: Ledger, live: set[tuple[str, str, str]], moment: datetime) -> list[dict[str, Any]]:
    """The ledger's jobs that are not in progress (status --all), oldest first: as recorded,
    nothing to check and nothing billing."""
    records = [r for kind in JOB_KINDS for r in ledger.list(kind) if (r.kind, r.name, r.backend) not in live]
    return [
        _row(record, record.state, 0.0, moment, {"ended": True})
        for record in sorted(records, key=lambda r: r.created_at)
        if record.state not in ACTIVE_JOB_STATES
    ]
