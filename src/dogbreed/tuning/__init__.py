"""Hyperparameter search on the local backend: the same `tune.*` section SageMaker reads,
run by Optuna over real jobs of train.py.

    space.py      tune.ranges -> search parameters (pure), and their Optuna distributions
    strategy.py   tune.strategy / early_stopping -> an Optuna sampler and pruner
    trials.py     trial names, states and the summary of a study (pure bookkeeping)
    study.py      the study on disk (JournalStorage), the ask lock, recovery after a kill
    runner.py     one trial: a training job through the local backend, pruned per epoch
    recovery.py   trials a killed or stopped process left RUNNING: kept if done, else retried
    worker.py     a worker process: asks for trials until the budget is spent
    pool.py       starting, finding and stopping worker processes
    live.py       the live table of trials people watch on stderr

Nothing here is imported by `dogbreed --help`; Optuna and torch are imported inside functions.
"""
