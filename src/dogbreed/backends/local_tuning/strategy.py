"""tune.strategy and tune.early_stopping -> the Optuna sampler and pruner that play their part.

Bayesian   TPESampler          (SageMaker: Bayesian optimisation)
Random     RandomSampler
Grid       GridSampler         every integer/categorical value once (max_jobs unused, as on SageMaker)
Hyperband  RandomSampler + HyperbandPruner over epochs (SageMaker's Hyperband also samples
           at random and stops jobs on their per-epoch objective)
early_stopping Auto -> MedianPruner: SageMaker's 'Auto' stops a job whose objective is worse
           than the median of earlier jobs at the same epoch, which is the median rule.
"""

from __future__ import annotations

from typing import Any

from dogbreed.config.schema import TuneConfig
from dogbreed.tuning.space import SearchParam, grid, grid_size


def sampler_seed(tune: TuneConfig, worker: int) -> int:
    # Each worker process samples on its own: the same seed everywhere would make parallel
    # workers propose the same random points.
    return tune.seed + worker


def startup_trials(tune: TuneConfig) -> int:
    # TPE's default of 10 random trials would make a typical 8-trial study purely random;
    # a third of the budget (at least 2) leaves room for the model to steer.
    return max(2, min(10, tune.max_jobs // 3))


def make_sampler(tune: TuneConfig, space: list[SearchParam], worker: int = 0) -> Any:
    import optuna

    seed = sampler_seed(tune, worker)
    if tune.strategy == "Bayesian":
        # constant_liar: running trials count as bad guesses, so parallel workers spread out.
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup_trials(tune), constant_liar=True)
    if tune.strategy == "Grid":
        return _ask_tell_grid_sampler()(grid(space), seed=seed)
    return optuna.samplers.RandomSampler(seed=seed)


def _ask_tell_grid_sampler() -> type:
    from optuna.samplers import GridSampler

    class AskTellGridSampler(GridSampler):
        """GridSampler whose after_trial does not call study.stop(): that works only inside
        study.optimize and raises from study.tell. Workers stop on the trial budget instead."""

        def after_trial(self, study, trial, state, values) -> None:
            return None

    return AskTellGridSampler


def make_pruner(tune: TuneConfig, max_epochs: int) -> Any:
    import optuna

    if tune.strategy == "Hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max_epochs, reduction_factor=3)
    if tune.early_stopping == "Auto":
        # Judge nobody on the first epoch alone (steps are epochs, counted from 1, and the
        # earliest step pruned is n_warmup_steps); compare once two trials have finished.
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=2)
    return optuna.pruners.NopPruner()


def describe(tune: TuneConfig, space: list[SearchParam], max_epochs: int) -> dict[str, Any]:
    """What the plan says about the engine, without importing Optuna."""
    sampler = {
        "Bayesian": f"TPESampler(seed={tune.seed}, n_startup_trials={startup_trials(tune)}, constant_liar=True)",
        "Random": f"RandomSampler(seed={tune.seed})",
        "Grid": f"GridSampler({grid_size(space) if tune.strategy == 'Grid' else 0} points, seed={tune.seed})",
        "Hyperband": f"RandomSampler(seed={tune.seed})",
    }[tune.strategy]
    if tune.strategy == "Hyperband":
        pruner = f"HyperbandPruner(min_resource=1, max_resource={max_epochs}, reduction_factor=3)"
    elif tune.early_stopping == "Auto":
        pruner = "MedianPruner(n_startup_trials=2, n_warmup_steps=2)"
    else:
        pruner = "none"
    return {"sampler": sampler, "pruner": pruner}
