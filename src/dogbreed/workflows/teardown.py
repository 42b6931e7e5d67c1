"""teardown: stop and delete endpoints this tool created, so nothing keeps running or billing.

Candidates are the endpoints in the ledger and, on a backend that can list what this project
runs (SageMaker, by its dogbreed:project tag), those it finds there: a CI runner or a second
machine has a ledger of its own, and a lost workspace has none, but the endpoint still bills.
A name neither knows is reported as not found, never deleted on the backend, and is an error
(exit 1) with the closest live names, since a typo would otherwise leave a paid endpoint
running while the command "succeeds"; `--ignore-missing` makes it a success. `--all` then
sweeps what the endpoints left behind (a tagged model no endpoint points to). `--expired`
deletes the endpoints whose TTL (deploy.ttl, the ledger's or the dogbreed:expires-at tag's
expiry) has passed: SageMaker does not stop an endpoint by itself. With
sagemaker.scheduler_role, deploy leaves that to an EventBridge Scheduler schedule (the
backend deletes it with the endpoint); without one, a scheduled
`dogbreed teardown --expired --yes --backend sagemaker` is what enforces the TTL there.
Deleting is idempotent: an endpoint the ledger knows as deleted is "not found" the second
time, and that is a success. `select` and `teardown` are separate so the CLI can ask in between.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from dogbreed.backends.base import Backend
from dogbreed.errors import BusyError, NotFoundError, UsageError
from dogbreed.ledger import Ledger, now
from dogbreed.progress import NullReporter, Reporter
from dogbreed.workflows.deploy import deploy_lock

DEPLOY_WAIT_ATTEMPTS = 600  # 0.1 s apart: a local deploy starts in seconds; SageMaker's in minutes


@dataclass
class TeardownPlan:
    targets: list[str] = field(default_factory=list)
    not_found: list[str] = field(default_factory=list)
    sweep: bool = False  # also delete what is tagged for this project and left behind
    # Names in not_found that match nothing at all (not even an endpoint deleted earlier),
    # each with the closest live names: a typo, unless --ignore-missing.
    unknown: dict[str, list[str]] = field(default_factory=dict)
    live: list[str] = field(default_factory=list)
    # Running batch transform jobs to stop (named, or every one with --all): they end by
    # themselves, but a stop ends the billing now.
    jobs: list[str] = field(default_factory=list)

    def missing_error(self, backend_name: str) -> NotFoundError | None:
        """The one-line error for names that match nothing, or None when every name matched."""
        if not self.unknown:
            return None
        parts = []
        for name, close in self.unknown.items():
            hint = f"did you mean {' or '.join(close)}?" if close else _live_hint(self.live)
            parts.append(f"endpoint {name} matches no {backend_name} endpoint; {hint}")
        return NotFoundError("; ".join(parts) + " (--ignore-missing treats a missing name as already deleted)")


def _live_hint(live: Sequence[str]) -> str:
    return f"live: {', '.join(live)}" if live else "no endpoint is live (see `dogbreed status`)"


@dataclass
class TeardownResult:
    deleted: list[str] = field(default_factory=list)
    not_found: list[str] = field(default_factory=list)
    dry_run: bool = False
    would_delete: list[str] = field(default_factory=list)
    # --all on a backend that lists by tags: "kind/name" deleted after the endpoints (left
    # behind), or in a dry run everything tagged that --all would remove, endpoints included.
    swept: list[str] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)  # transform jobs (would_stop in a dry run)
    busy: list[str] = field(default_factory=list)  # endpoints left alone: a deploy of them still runs

    def busy_error(self) -> BusyError | None:
        return BusyError("; ".join(self.busy)) if self.busy else None

    def to_json(self) -> dict[str, Any]:
        answer: dict[str, Any] = {"deleted": self.deleted, "not_found": self.not_found, "dry_run": self.dry_run}
        if self.stopped:
            answer["would_stop" if self.dry_run else "stopped"] = self.stopped
        if self.dry_run:
            answer["would_delete"] = self.would_delete
        if self.swept:
            answer["would_sweep" if self.dry_run else "swept"] = self.swept
        if self.busy:
            answer["busy"] = self.busy
        return answer


def listed_resources(backend: Backend | None) -> list[dict[str, Any]]:
    """What the backend itself finds as this project's and live (status rows); [] where it
    cannot list (local: its endpoints live in this workspace, so the ledger knows them all)."""
    list_resources = getattr(backend, "list_resources", None)
    if list_resources is None:
        return []
    return [row for row in list_resources() if row["state"] not in ("gone", "deleted")]


def listed_endpoints(backend: Backend | None) -> list[dict[str, Any]]:
    """Live endpoints the backend itself finds as this project's (see listed_resources)."""
    return [row for row in listed_resources(backend) if row["kind"] == "endpoint"]


TRANSFORM_JOB = "transform-job"


def running_jobs(ledger: Ledger, backend_name: str, listed: Sequence[dict[str, Any]] = ()) -> list[str]:
    """Transform jobs running as far as the ledger knows, and those the backend lists (tagged)."""
    known = [r.name for r in ledger.list(TRANSFORM_JOB, backend=backend_name, states=("InProgress", "Stopping"))]
    known += [row["name"] for row in listed if row["kind"] == TRANSFORM_JOB and row["state"] == "InProgress"]
    return list(dict.fromkeys(known))


def _expiry(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def select(
    ledger: Ledger,
    backend_name: str,
    names: Sequence[str] = (),
    all_: bool = False,
    reporter: Reporter | None = None,
    *,
    expired: bool = False,
    listed: Sequence[dict[str, Any]] = (),
    at: datetime | None = None,
    listed_jobs: Sequence[dict[str, Any]] = (),
) -> TeardownPlan:
    """Which endpoints to delete: the named ones, every one (--all), those past their TTL
    (--expired), or else the ledger's latest. `listed`: what listed_endpoints found."""
    reporter = reporter or NullReporter()
    if expired and (all_ or names):
        raise UsageError("--expired picks the endpoints itself: give it no names and no --all")
    every = ledger.list("endpoint", backend=backend_name)
    records = [r for r in every if r.state != "deleted"]
    # "gone" endpoints (expired, killed) still have files to remove and a ledger entry to close.
    expiry = {r.name: r.expires_at for r in records}
    for row in listed:
        if expiry.get(row["name"]) is None:
            expiry[row["name"]] = _expiry(row.get("expires_at"))
    known = list(expiry)
    if expired:
        moment = at or now()
        return TeardownPlan(targets=[n for n in known if expiry[n] is not None and expiry[n] <= moment])
    jobs = running_jobs(ledger, backend_name, listed_jobs)
    if all_:
        return TeardownPlan(targets=known, sweep=True, jobs=jobs)
    if not names:
        return TeardownPlan(targets=[r.name for r in records][-1:])
    deleted_before = {r.name for r in every if r.state == "deleted"}
    live = [r.name for r in records if r.live] + [row["name"] for row in listed if row["name"] not in {r.name for r in records}]
    plan = TeardownPlan(live=list(dict.fromkeys(live)))
    for name in dict.fromkeys(names):
        if name in expiry:
            plan.targets.append(name)
            continue
        if name in jobs:
            plan.jobs.append(name)
            continue
        plan.not_found.append(name)
        elsewhere = [r.backend for r in ledger.list("endpoint") if r.name == name and r.backend != backend_name and r.live]
        if elsewhere:
            reporter.warn(f"endpoint {name} lives on the {elsewhere[-1]} backend: use --backend {elsewhere[-1]}")
        if name not in deleted_before:  # deleted by an earlier teardown: done, not a typo
            plan.unknown[name] = difflib.get_close_matches(name, plan.live, n=3, cutoff=0.6)
    return plan


def teardown(
    backend: Backend, ledger: Ledger, plan: TeardownPlan, dry_run: bool = False, reporter: Reporter | None = None
) -> TeardownResult:
    reporter = reporter or NullReporter()
    result = TeardownResult(not_found=list(plan.not_found), dry_run=dry_run)
    for name in plan.targets:
        if dry_run:
            result.would_delete.append(name)
            continue
        try:
            # A deploy of the name in progress would report an endpoint in service that this
            # deleted under it: wait for it (a local one takes seconds), then delete what it made.
            lock = deploy_lock(ledger, backend.name, name).acquire(attempts=DEPLOY_WAIT_ATTEMPTS)
        except BusyError as exc:
            result.busy.append(f"endpoint {name} not deleted: {exc}; run teardown again once it ends")
            continue
        try:
            existed = backend.delete_endpoint(name)
        finally:
            os.close(lock)
        record = ledger.get("endpoint", name, backend.name)
        if record is not None and record.state != "deleted":
            ledger.update("endpoint", name, backend.name, state="deleted", meta={"stopped": "teardown"})
        (result.deleted if existed else result.not_found).append(name)
        reporter.info(f"endpoint {name}: {'deleted' if existed else 'already gone'}")
    for name in plan.jobs:
        if dry_run:
            result.stopped.append(name)
            continue
        stopped = backend.stop_transform(name)
        seen = backend.describe_transform(name).state
        if ledger.get(TRANSFORM_JOB, name, backend.name) is not None:
            ledger.update(TRANSFORM_JOB, name, backend.name, state=seen)
        if stopped:
            result.stopped.append(name)
        reporter.info(f"transform job {name}: {'stopping' if stopped else f'not running ({seen})'}")
    sweep = getattr(backend, "teardown", None) if plan.sweep else None
    if sweep is not None:
        # Tagged models and endpoint configs no endpoint uses any more (a failed deploy's).
        result.swept = sweep(dry_run=dry_run)["deleted"]
        if not dry_run:
            for item in result.swept:
                reporter.info(f"{item}: deleted (tagged for this project, left behind)")
    return result
