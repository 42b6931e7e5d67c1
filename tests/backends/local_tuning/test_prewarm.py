"""tune.prewarm: trials forked from a warm worker train exactly what exec'd trials train."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from dogbreed.backends.local_tuning.warm_start import FORKED_NOTE

pytestmark = pytest.mark.slow


def run(env, name: str, prewarm: bool) -> dict:
    env.write_config(tune={"max_jobs": 2, "max_parallel_jobs": 1, "prewarm": prewarm})
    result = env.cli("tune", "--name", name, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def job(env, trial: str) -> Path:
    return env.workspace / "jobs" / trial


def metric_lines(env, trial: str) -> list[str]:
    log = (job(env, trial) / "train.log").read_text().splitlines()
    return [line for line in log if "valid_acc=" in line]


def meta(env, trial: str) -> dict:
    records = (job(env, trial) / "output" / "data" / "records.jsonl").read_text().splitlines()
    return next(json.loads(line) for line in records if json.loads(line)["type"] == "meta")


def test_forked_trials_train_the_same_models_as_exec_d_ones(tune_env):
    forked = run(tune_env, "warm", prewarm=True)
    execd = run(tune_env, "cold", prewarm=False)

    assert [t["params"] for t in forked["trials"]] == [t["params"] for t in execd["trials"]]  # one seed
    assert [t["objective"] for t in forked["trials"]] == [t["objective"] for t in execd["trials"]]
    worker_log = (tune_env.workspace / "tuning" / "warm" / "worker-0.log").read_text()
    assert "prewarm: train.py's imports took" in worker_log
    expected_threads = int(os.environ.get("OMP_NUM_THREADS") or os.cpu_count() or 1)
    for warm, cold in zip(forked["trials"], execd["trials"]):
        warm_log = (job(tune_env, warm["name"]) / "train.log").read_text()
        cold_log = (job(tune_env, cold["name"]) / "train.log").read_text()
        assert FORKED_NOTE in warm_log and FORKED_NOTE not in cold_log
        # Every epoch's metrics, to the printed digit, and the same weights.
        assert metric_lines(tune_env, warm["name"]) == metric_lines(tune_env, cold["name"])
        warm_model = torch.load(job(tune_env, warm["name"]) / "model" / "model.pth", map_location="cpu")
        cold_model = torch.load(job(tune_env, cold["name"]) / "model" / "model.pth", map_location="cpu")
        assert warm_model.keys() == cold_model.keys()
        assert all(torch.equal(warm_model[key], cold_model[key]) for key in warm_model)
        # torch's thread pool follows the job's OMP_NUM_THREADS, although libgomp read the
        # variable when the warm worker imported torch.
        assert meta(tune_env, warm["name"])["torch_threads"] == meta(tune_env, cold["name"])["torch_threads"]
        assert meta(tune_env, warm["name"])["torch_threads"] == expected_threads


def test_prewarm_is_not_part_of_what_makes_a_search_the_same(tune_env):
    """Turning it off to debug a trial and resuming must not be refused as another search."""
    run(tune_env, "toggle", prewarm=True)
    tune_env.write_config(tune={"max_jobs": 3, "max_parallel_jobs": 1, "prewarm": False})
    result = tune_env.cli("tune", "--name", "toggle", "--json")
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert len(answer["trials"]) == 3 and answer["resumed"] is True
    assert FORKED_NOTE in (job(tune_env, answer["trials"][0]["name"]) / "train.log").read_text()
    assert FORKED_NOTE not in (job(tune_env, answer["trials"][2]["name"]) / "train.log").read_text()
