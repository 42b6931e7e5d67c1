"""A tuning job's trials as rows to tabulate and plot (pure: ledger records in, rows out).

The tuning workflow records the job as kind "tuning-job" (meta: strategy, objective
{metric, type}, best {name, params, objective}, trials) and each trial as kind "trial" with
parent = the tuning job's name (meta: params, objective, state, failure).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

# Ranges searched on a log scale are plotted on one; without the config's ranges we guess
# log when a positive parameter spans at least this ratio (two decades: lr 1e-4..1e-2).
LOG_SPAN_RATIO = 100.0


@dataclass(frozen=True)
class Trial:
    number: int  # 1-based, in the order the trials were recorded
    name: str
    state: str
    params: dict[str, Any]
    objective: float | None
    failure: str | None = None


@dataclass(frozen=True)
class TuningSummary:
    name: str
    backend: str
    strategy: str | None
    metric: str
    maximize: bool
    best: dict[str, Any]
    trials: list[Trial] = field(default_factory=list)

    @property
    def scored(self) -> list[Trial]:
        return [t for t in self.trials if t.objective is not None and math.isfinite(t.objective)]

    @property
    def param_names(self) -> list[str]:
        names: dict[str, None] = {}
        for trial in self.trials:
            names.update(dict.fromkeys(trial.params))
        return list(names)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def summarize(job: Any, trials: Iterable[Any]) -> TuningSummary:
    """From the ledger's tuning-job Resource and its trial Resources (oldest first)."""
    meta = job.meta or {}
    objective = meta.get("objective") or {}
    rows = []
    for number, trial in enumerate(trials, start=1):
        tmeta = trial.meta or {}
        rows.append(
            Trial(
                number=number,
                name=trial.name,
                state=str(tmeta.get("state") or trial.state),
                params=dict(tmeta.get("params") or {}),
                objective=_number(tmeta.get("objective")),
                failure=tmeta.get("failure"),
            )
        )
    return TuningSummary(
        name=job.name,
        backend=job.backend,
        strategy=meta.get("strategy"),
        metric=str(objective.get("metric") or "objective"),
        maximize=str(objective.get("type") or "Maximize").lower().startswith("max"),
        best=dict(meta.get("best") or {}),
        trials=rows,
    )


def log_scaled(summary: TuningSummary, scalings: Mapping[str, str] | None = None) -> set[str]:
    """Parameters to plot on a log axis: Logarithmic ranges in the config, else a wide span."""
    scalings = scalings or {}
    chosen = set()
    for name in summary.param_names:
        scaling = scalings.get(name)
        values = [_number(t.params.get(name)) for t in summary.trials]
        numbers = [v for v in values if v is not None]
        if scaling in ("Logarithmic", "ReverseLogarithmic"):
            if numbers and min(numbers) > 0:
                chosen.add(name)
        elif scaling is None and numbers and min(numbers) > 0 and max(numbers) / min(numbers) >= LOG_SPAN_RATIO:
            chosen.add(name)
    return chosen
