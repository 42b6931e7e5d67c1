"""The table of trials people watch while a study runs (stderr; stdout stays for --json).

On a terminal it is a rich Live table redrawn a few times a second from the ledger's trial
rows; in a log (CI, a pipe, --json) it prints one line whenever a trial starts or ends
instead of redrawing, and a progress line (finished trials, rate, ETA) at least every 30 s.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from dogbreed.ledger import Resource
from dogbreed.progress import PROGRESS_INTERVAL_S, ProgressLines

FINISHED = ("Completed", "Stopped", "Failed")  # a trial's end states (workflows/tune.py)


def format_params(params: dict[str, Any]) -> str:
    return " ".join(f"{key}={value:.3g}" if isinstance(value, float) else f"{key}={value}" for key, value in params.items())


def _number(value: Any) -> str:
    return "" if value is None else f"{value:.4f}"


def row(trial: Resource) -> dict[str, str]:
    meta = trial.meta
    epochs = meta.get("epochs")
    progress = f"{meta.get('epoch', 0)}/{epochs}" if epochs else ""
    state = trial.state + (" (retried)" if meta.get("retried") else "")
    return {
        "trial": trial.name.rsplit("-", 1)[-1],
        "params": format_params(meta.get("params") or {}),
        "epoch": progress,
        "objective": _number(meta.get("objective")),
        "test_acc": _number(meta.get("test_acc")),
        "state": state,
        "failure": (meta.get("failure") or "")[:80],
    }


def table(title: str, metric: str, trials: Iterable[Resource]) -> Any:
    from rich.table import Table
    from rich.text import Text

    styles = {"Completed": "green", "Failed": "red", "Stopped": "yellow", "InProgress": "cyan"}
    out = Table(title=title, title_justify="left")
    for header in ("trial", "params", "epoch", metric, "test_acc", "state"):
        out.add_column(header, justify="right" if header in (metric, "test_acc", "epoch") else "left")
    for trial in trials:
        cells = row(trial)
        state = Text(cells["state"], style=styles.get(trial.state, "white"))
        if cells["failure"] and trial.state == "Failed":
            state.append(f" {cells['failure']}", style="dim")
        out.add_row(cells["trial"], cells["params"], cells["epoch"], cells["objective"], cells["test_acc"], state)
    return out


class TrialView:
    """`with TrialView(console, ...) as view: view.show(trials)`.

    At a terminal (and not `plain`, i.e. --json): a live table. Otherwise plain lines: one per
    trial state change, and a progress line (finished trials of `total`, rate, ETA) at least
    every interval_s even while no trial changes."""

    def __init__(
        self,
        console: Any,
        title: str,
        metric: str,
        plain: bool = False,
        total: int | None = None,
        interval_s: float = PROGRESS_INTERVAL_S,
    ) -> None:
        self.console, self.title, self.metric = console, title, metric
        self.live_mode = not plain and console.is_terminal  # honours force_terminal itself
        self._live: Any = None
        self._seen: dict[str, str] = {}
        self._progress = None if self.live_mode else ProgressLines(title, total, self._say, interval_s)

    def _say(self, line: str) -> None:
        self.console.print(line, highlight=False, markup=False, soft_wrap=True)

    def __enter__(self) -> TrialView:
        if self._progress is not None:
            self._progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._live is not None:
            self._live.__exit__(*exc)
        if self._progress is not None:
            self._progress.__exit__(*exc)

    def show(self, trials: list[Resource]) -> None:
        if self._progress is not None:
            self._progress.update(sum(t.state in FINISHED and not t.meta.get("retried") for t in trials))
        if self.live_mode:
            if self._live is None:
                from rich.live import Live

                self._live = Live(table(self.title, self.metric, []), console=self.console, refresh_per_second=4)
                self._live.__enter__()
            self._live.update(table(self.title, self.metric, trials))
            return
        for trial in trials:
            if self._seen.get(trial.name) == trial.state:
                continue
            self._seen[trial.name] = trial.state
            cells = row(trial)
            line = f"{trial.name} {cells['state']} {cells['params']}"
            if trial.state == "Completed":
                line += f" {self.metric}={cells['objective']} test_acc={cells['test_acc']}"
            elif trial.state == "Failed":
                line += f": {cells['failure']}"
            self._say(line)
