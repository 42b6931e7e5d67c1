"""Hyperparameter search on the local backend: the same `tune.*` section SageMaker reads,
run by Optuna over real jobs of train.py.

    backend.py    the Backend protocol's tuning methods (plan, start, wait, describe)
    job.py        one tuning job from start (or resume) to its answer: workers, follow, settle
    strategy.py   tune.strategy / early_stopping -> an Optuna sampler and pruner
    trials.py     trial names, states and the summary of a study (pure bookkeeping)
    study.py      the study on disk (JournalStorage) and the lock workers ask under
    runner.py     one trial: a training job through the local backend, pruned per epoch
    recovery.py   trials a killed or stopped process left RUNNING: kept if done, else retried
    worker.py     a worker process: asks for trials until the budget is spent
    pool.py       starting, finding and stopping worker processes
    warm_start.py trials forked from a worker that imported torch once (tune.prewarm)

The search space itself (tune.ranges -> parameters) is backend-neutral: dogbreed/tuning/space.py.
Trial rows of the ledger are written here (by the workers, as trials run); the tuning job's
own row is the tune workflow's. Nothing here is imported by `dogbreed --help`; Optuna and
torch are imported inside functions.
"""
