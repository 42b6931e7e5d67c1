"""A tuning job as data: the request the `tune` command makes, and its answer (DESIGN section 3).

Light on purpose (no boto3, no sagemaker): the CLI and workflows import it.
The answer's `params` are keyed like tune.ranges (train.* names, typed), whatever the
backend called them on the wire.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from dogbreed.config import Config
from dogbreed.config.flags import flag_for
from dogbreed.config.schema import TrainConfig

TERMINAL = ("Completed", "Failed", "Stopped")


@dataclass(frozen=True)
class TuningRequest:
    name: str  # at most 32 characters on SageMaker (dogbreed.naming.unique_name("tune"))
    config: Config  # tune.* says what to search; train.* gives the static values
    dataset_uri: str
    manifest_sha256: str | None = None


def _decode(raw: str) -> Any:
    # The SDK JSON-encodes categorical values ('"32"'); continuous and integer ones are bare.
    try:
        return json.loads(raw)
    except (TypeError, ValueError):
        return raw


def _typed(key: str, value: Any) -> Any:
    annotation = TrainConfig.model_fields[key].annotation
    if annotation is int:
        return int(float(value))
    if annotation is float:
        return float(value)
    return value


def _train_key_by_flag() -> dict[str, str]:
    found = {}
    for key in TrainConfig.model_fields:
        try:
            found[flag_for(key)] = key
        except KeyError:
            continue  # a train.* setting that is not a flag of train.py
    return found


def params_from_hyperparameters(tuned: Mapping[str, str]) -> dict[str, Any]:
    """{'batch-size': '"32"', 'lr': '0.01'} -> {'batch_size': 32, 'lr': 0.01}.

    Needs no config: a tuning job described later, from another machine, reads the same."""
    by_flag = _train_key_by_flag()
    return {by_flag[flag]: _typed(by_flag[flag], _decode(raw)) for flag, raw in tuned.items() if flag in by_flag}


def trial_from_summary(summary: Mapping[str, Any]) -> dict[str, Any]:
    """One TrainingJobSummaries entry of ListTrainingJobsForHyperParameterTuningJob."""
    metric = summary.get("FinalHyperParameterTuningJobObjectiveMetric") or {}
    return {
        "name": summary["TrainingJobName"],
        "params": params_from_hyperparameters(summary.get("TunedHyperParameters", {})),
        "objective": metric.get("Value"),
        "status": summary.get("TrainingJobStatus"),
    }


def best_trial(
    trials: Iterable[Mapping[str, Any]], objective_type: str, named: str | None = None
) -> dict[str, Any] | None:
    """The trial SageMaker named best when it is among `trials`, else the best objective."""
    done = [t for t in trials if t["status"] == "Completed" and t["objective"] is not None]
    for trial in done:
        if trial["name"] == named:
            return {"name": trial["name"], "params": trial["params"], "objective": trial["objective"]}
    if not done:
        return None
    pick = max if objective_type == "Maximize" else min
    trial = pick(done, key=lambda t: t["objective"])
    return {"name": trial["name"], "params": trial["params"], "objective": trial["objective"]}


def tuning_answer(describe: Mapping[str, Any], summaries: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """DescribeHyperParameterTuningJob + its trial summaries -> the tune answer."""
    trials = sorted((trial_from_summary(s) for s in summaries), key=lambda t: t["name"])
    named = (describe.get("BestTrainingJob") or {}).get("TrainingJobName")
    job_config = describe.get("HyperParameterTuningJobConfig", {})
    objective = job_config.get("HyperParameterTuningJobObjective", {})
    return {
        "tuning_job": describe["HyperParameterTuningJobName"],
        "backend": "sagemaker",
        "state": describe["HyperParameterTuningJobStatus"],
        "strategy": job_config.get("Strategy"),
        "objective": {"metric": objective.get("MetricName"), "type": objective.get("Type")},
        "trials": trials,
        "best": best_trial(trials, objective.get("Type", "Maximize"), named),
        "counters": describe.get("TrainingJobStatusCounters", {}),
        "failure": describe.get("FailureReason") or None,
    }
