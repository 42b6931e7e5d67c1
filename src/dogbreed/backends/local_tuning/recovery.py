"""Picking up after a kill: trials the study still calls RUNNING while no worker runs.

Called only when no worker process of the tuning job is alive, so nobody else can be
telling the study about these trials. For each one:
- its job finished anyway (the job's supervisor outlives a killed worker): keep the result;
- otherwise stop the job if it still runs, mark the trial failed with `retried`, and queue
  the same params again, so the study still reaches max_jobs finished trials.
"""

from __future__ import annotations

import math
from typing import Any

from dogbreed.backends.local_training import LocalTraining
from dogbreed.backends.local_tuning.runner import objective_of, record
from dogbreed.backends.local_tuning.study import TuningSetup, trial_handle
from dogbreed.backends.local_tuning.trials import ATTR_FAILURE, ATTR_OBJECTIVE, ATTR_RETRIED, ATTR_TEST_ACC, summarize
from dogbreed.errors import NotFoundError
from dogbreed.ledger import Ledger

STOP_WAIT_SECONDS = 30


def _settle(backend: LocalTraining, name: str) -> Any:
    """The job's outcome once it is no longer running (stopping it if need be)."""
    import time

    try:
        outcome = backend.describe_training(name)
    except NotFoundError:
        return None  # killed before its job started
    if outcome.state == "InProgress":
        backend.stop_training(name)
        deadline = time.monotonic() + STOP_WAIT_SECONDS
        while outcome.state == "InProgress" and time.monotonic() < deadline:
            time.sleep(0.2)
            outcome = backend.describe_training(name)
    return outcome


def recover(setup: TuningSetup, study: Any, backend: LocalTraining, ledger: Ledger) -> list[str]:
    """Settle every RUNNING trial; returns one line per trial for people."""
    from optuna.trial import TrialState

    notes: list[str] = []
    for frozen in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        summary = summarize(setup.name, frozen)
        outcome = _settle(backend, summary.name)
        trial = trial_handle(study, frozen.number)
        objective = objective_of(outcome, setup.metric) if outcome else None
        if outcome is not None and outcome.state == "Completed" and objective is not None and math.isfinite(objective):
            summary.status, summary.objective = "Completed", objective
            summary.test_acc = outcome.metrics.get("test_acc")
            trial.set_user_attr(ATTR_OBJECTIVE, objective)
            if summary.test_acc is not None:
                trial.set_user_attr(ATTR_TEST_ACC, summary.test_acc)
            study.tell(trial, objective)
            record(ledger, setup, summary, model_uri=outcome.model_uri, log_uri=outcome.log_uri)
            notes.append(f"{summary.name}: finished while the tuning process was away; kept")
            continue
        summary.status, summary.retried = "Failed", True
        summary.failure = "interrupted (the tuning process stopped or was killed); retried with the same params"
        trial.set_user_attr(ATTR_FAILURE, summary.failure)
        trial.set_user_attr(ATTR_RETRIED, True)
        study.tell(trial, state=TrialState.FAIL)
        if frozen.params:
            # Same point again: a random or TPE sampler would not come back to it by itself.
            study.enqueue_trial(dict(frozen.params), user_attrs={"retry_of": summary.name})
        record(ledger, setup, summary)
        notes.append(f"{summary.name}: interrupted; queued again")
    return notes
