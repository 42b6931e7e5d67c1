"""teardown: stop and delete endpoints this tool created, so nothing keeps running or billing.

Only endpoints in the ledger are candidates: a name the ledger does not know is reported
as not found, never looked up and deleted on the backend. Deleting is idempotent: an
endpoint already deleted is "not found" the second time, and that is a success.
`select` and `teardown` are separate so the CLI can ask for confirmation in between.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from dogbreed.backends.base import Backend
from dogbreed.ledger import Ledger
from dogbreed.reporting import NullReporter, Reporter


@dataclass
class TeardownPlan:
    targets: list[str] = field(default_factory=list)
    not_found: list[str] = field(default_factory=list)


@dataclass
class TeardownResult:
    deleted: list[str] = field(default_factory=list)
    not_found: list[str] = field(default_factory=list)
    dry_run: bool = False
    would_delete: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        answer: dict[str, Any] = {"deleted": self.deleted, "not_found": self.not_found, "dry_run": self.dry_run}
        if self.dry_run:
            answer["would_delete"] = self.would_delete
        return answer


def _pending(ledger: Ledger, backend_name: str) -> list[str]:
    # "gone" endpoints (expired, killed) still have files to remove and a ledger entry to close.
    return [r.name for r in ledger.list("endpoint", backend=backend_name) if r.state != "deleted"]


def select(
    ledger: Ledger,
    backend_name: str,
    names: Sequence[str] = (),
    all_: bool = False,
    reporter: Reporter | None = None,
) -> TeardownPlan:
    """Which endpoints to delete: the named ones, every one (--all), or else the latest."""
    reporter = reporter or NullReporter()
    pending = _pending(ledger, backend_name)
    if all_:
        return TeardownPlan(targets=pending)
    if not names:
        return TeardownPlan(targets=pending[-1:])
    plan = TeardownPlan()
    for name in dict.fromkeys(names):
        if name in pending:
            plan.targets.append(name)
            continue
        plan.not_found.append(name)
        elsewhere = [r.backend for r in ledger.list("endpoint") if r.name == name and r.backend != backend_name and r.live]
        if elsewhere:
            reporter.warn(f"endpoint {name} lives on the {elsewhere[-1]} backend: use --backend {elsewhere[-1]}")
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
        existed = backend.delete_endpoint(name)
        record = ledger.get("endpoint", name, backend.name)
        if record is not None and record.state != "deleted":
            ledger.update("endpoint", name, backend.name, state="deleted")
        (result.deleted if existed else result.not_found).append(name)
        reporter.info(f"endpoint {name}: {'deleted' if existed else 'already gone'}")
    return result
