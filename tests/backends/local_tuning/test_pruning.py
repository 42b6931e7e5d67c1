"""Per-epoch reports and early stopping: a real job below the median is stopped through the
backend; Hyperband gets its epoch budget from train.epochs."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest

from dogbreed.backends.local import LocalBackend
from dogbreed.backends.local_tuning import strategy
from dogbreed.backends.local_tuning.backend import setup_of
from dogbreed.backends.local_tuning.runner import run_trial, trial_training
from dogbreed.backends.local_tuning.study import TuningSetup, open_study
from dogbreed.config import load_config
from dogbreed.tuning.space import distributions
from dogbreed.workflows.tune import plan
from dogbreed.workspace import Workspace
from tests.backends.local_tuning.conftest import build_dataset
from tests.conftest import EXAMPLES

pytestmark = pytest.mark.slow


def small_dataset(tmp_path: Path) -> str:
    """One photo per breed and split: uncached epochs of seconds, not tens of seconds."""
    source = tmp_path / "three-per-breed"
    for breed in sorted(p for p in (EXAMPLES / "dogs").iterdir() if p.is_dir()):
        (source / breed.name).mkdir(parents=True)
        for photo in sorted(breed.glob("*.jpg"))[:3]:
            (source / breed.name / photo.name).symlink_to(photo)
    return build_dataset(source, tmp_path / "small-dataset")[0]


def test_a_trial_below_the_median_is_stopped_through_the_backend(tune_env, tmp_path):
    # Without the feature cache an epoch runs the backbone, so the job is still running when
    # its second epoch is judged; a random head with an lr of 1e-7 stays near chance.
    tune_env.write_config(
        model={"head_init": "random"},
        train={"epochs": 3, "feature_cache": False},
        tune={"early_stopping": "Auto", "ranges": {"lr": {"type": "continuous", "min": 1e-7, "max": 2e-7}}},
    )
    config = load_config([tune_env.config])
    backend = LocalBackend(config, Workspace(Path(config.workspace)))
    setup: TuningSetup = setup_of(plan(config, tune_env.ledger, backend, dataset=small_dataset(tmp_path)).request)
    study = open_study(setup)
    for _ in range(2):  # MedianPruner's two finished trials to compare with
        study.add_trial(
            optuna.trial.create_trial(
                params={"lr": 1.5e-7},
                distributions=distributions(setup.space),
                value=0.9,
                intermediate_values={epoch: 0.9 for epoch in range(1, 4)},
            )
        )

    summary = run_trial(setup, study, study.ask(), trial_training(setup), tune_env.ledger)

    assert summary.status == "Stopped" and summary.epochs == 2
    job = tune_env.workspace / "jobs" / summary.name
    assert json.loads((job / "status.json").read_text())["state"] == "Stopped"
    log = (job / "train.log").read_text()
    assert "epoch=2 " in log and "epoch=3 " not in log
    frozen = study.get_trials()[-1]
    assert frozen.state == optuna.trial.TrialState.PRUNED and sorted(frozen.intermediate_values) == [1, 2]
    assert tune_env.ledger.get("trial", summary.name, "local").state == "Stopped"


def test_hyperband_budgets_epochs_from_one_to_train_epochs():
    config = load_config([], ["tune.strategy=Hyperband", "tune.ranges={}", "train.epochs=9"])
    pruner = strategy.make_pruner(config.tune, config.train.epochs)
    assert isinstance(pruner, optuna.pruners.HyperbandPruner)
    assert (pruner._min_resource, pruner._max_resource, pruner._reduction_factor) == (1, 9, 3)
    assert strategy.make_sampler(config.tune, []).__class__ is optuna.samplers.RandomSampler
