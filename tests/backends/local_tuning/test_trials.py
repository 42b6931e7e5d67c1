"""Trial bookkeeping: the budget, the best trial, the tuning job's state (pure logic)."""

from __future__ import annotations

from dogbreed.backends.local_tuning.trials import (
    TrialSummary,
    best,
    budget_left,
    finished_count,
    first_failure,
    trial_name,
    tuning_state,
)


def trial(number: int, status: str, objective: float | None = None, **kw) -> TrialSummary:
    return TrialSummary(number=number, name=trial_name("t", number), status=status, objective=objective, **kw)


def test_names_sort_with_the_trial_number():
    assert trial_name("mytune", 3) == "mytune-t003"
    assert sorted(trial_name("x", n) for n in (10, 2, 1)) == ["x-t001", "x-t002", "x-t010"]


def test_retried_trials_do_not_spend_the_budget_and_running_ones_reserve_it():
    trials = [
        trial(0, "Completed", 0.5),
        trial(1, "Failed", retried=True),
        trial(2, "Failed", failure="boom"),
        trial(3, "InProgress"),
        trial(4, "Pending"),
    ]
    assert finished_count(trials) == 2
    assert budget_left(trials, 4) == 1
    assert budget_left(trials, 2) == 0


def test_best_is_the_best_completed_trial_and_ties_go_to_the_earliest():
    trials = [
        trial(0, "Completed", 0.7),
        trial(1, "Stopped", 0.99),  # pruned: trained fewer epochs, never the best
        trial(2, "Completed", 0.9),
        trial(3, "Completed", 0.9),
        trial(4, "Failed"),
    ]
    assert best(trials, maximize=True).number == 2
    assert best(trials, maximize=False).number == 0
    assert best([trial(0, "Failed")], maximize=True) is None


def test_tuning_state_and_first_failure():
    failed = [trial(1, "Failed", failure="second"), trial(0, "Failed", failure="first")]
    assert tuning_state(failed, 2) == "Failed"
    assert first_failure(failed).failure == "first"
    assert tuning_state([*failed, trial(2, "Completed", 0.1)], 3) == "Completed"
    assert tuning_state([trial(0, "Completed", 0.1), trial(1, "Failed", retried=True)], 2) == "Stopped"


def test_each_trial_process_gets_its_share_of_the_cores(monkeypatch):
    """What a worker exports before it imports torch, and what a plan shows: one formula."""
    from dogbreed.backends.local_training import trial_threads
    from dogbreed.config import load_config

    monkeypatch.setattr("os.cpu_count", lambda: 8)
    shares = {
        (parallel, processes): trial_threads(
            load_config(sets=["tune.max_jobs=16", f"tune.max_parallel_jobs={parallel}", f"train.processes={processes}"])
        )
        for parallel, processes in ((1, 1), (2, 1), (2, 2), (3, 1), (16, 1))
    }
    assert shares == {(1, 1): 8, (2, 1): 4, (2, 2): 2, (3, 1): 2, (16, 1): 1}
