"""A worker process of a local tuning job: asks for trials and runs them until the budget is spent.

    python -m dogbreed.backends.local_tuning.worker <tuning folder> <worker index>

tune.max_parallel_jobs workers run side by side, each with its own handle on the study
(JournalStorage is safe across processes). They count and ask under one file lock, so the
study never starts more than its budget. SIGTERM stops the running trial's job and exits;
the trial is picked up by recovery on the next `tune`.

The frozen backbone's feature cache needs no warm-up step: the first job to need it
extracts it under train.py's cache lock while the others start up and wait on that lock,
then read it. Holding the other workers back until the first trial ended was measured no
faster (their torch start-up no longer overlapped the extraction).
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from dogbreed.backends.local_training import trial_threads
from dogbreed.backends.local_tuning.runner import run_trial, trial_training
from dogbreed.backends.local_tuning.study import TuningSetup, ask_lock, open_study
from dogbreed.backends.local_tuning.trials import budget_left, summarize_all
from dogbreed.backends.local_tuning.warm_start import WarmStart


def _warm_launcher(setup: TuningSetup) -> WarmStart | None:
    """train.py's imports, paid once here instead of once per trial (warm_start.py)."""
    if not setup.config.tune.prewarm or setup.config.train.processes != 1:
        return None
    launcher = WarmStart()
    seconds = launcher.warm_up()
    if not launcher.usable():
        print("prewarm: forking is not safe here; every trial starts its own interpreter", flush=True)
        return None
    print(f"prewarm: train.py's imports took {seconds:.1f} s; trials fork from this worker", flush=True)
    return launcher


def work(folder: Path, worker: int) -> int:
    setup = TuningSetup.load(folder)
    # Before torch is imported (the warm-up): libgomp reads it once. Jobs inherit it.
    os.environ.setdefault("OMP_NUM_THREADS", str(trial_threads(setup.config)))
    study = open_study(setup, worker)
    backend = trial_training(setup, _warm_launcher(setup))
    ledger = setup.workspace.ledger
    while True:
        with ask_lock(folder):
            trials = summarize_all(setup.name, study.get_trials(deepcopy=False))
            if budget_left(trials, setup.budget) == 0:
                return 0
            trial = study.ask()
        summary = run_trial(setup, study, trial, backend, ledger)
        print(f"{summary.name} {summary.status} objective={summary.objective} {summary.failure or ''}", flush=True)


def _stop(signum: int, _frame: object) -> None:
    # wait_training turns KeyboardInterrupt into a clean stop of the running job.
    raise KeyboardInterrupt


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit("usage: python -m dogbreed.backends.local_tuning.worker TUNING_DIR WORKER_INDEX")
    signal.signal(signal.SIGTERM, _stop)
    try:
        code = work(Path(sys.argv[1]), int(sys.argv[2]))
    except KeyboardInterrupt:
        code = 130
    # Every write is already durable (journal appends, ledger commits, job folders), so skip
    # the interpreter's teardown: with torch imported it takes ~0.75 s, and the CLI waits
    # for the last worker to exit before it answers.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
