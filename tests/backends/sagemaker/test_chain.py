"""train -> tune -> deploy -> teardown on the moto server leaves nothing behind.

moto completes training and tuning jobs the moment they are created. It does not implement
ListTrainingJobsForHyperParameterTuningJob, so that one call is answered by a botocore
`before-call` hook with summaries shaped like SageMaker's; every other call goes to moto.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from dogbreed.backends.base import DeployRequest, TuningRequest
from dogbreed.workflows import train as train_workflow
from dogbreed.workspace import Workspace
from tests.backends.sagemaker.conftest import BUCKET, DATASET, make_backend, sm_config


def answer_trials(client, summaries: list[dict]) -> None:
    from botocore.awsrequest import AWSResponse

    def respond(**_):
        return AWSResponse("http://moto.invalid", 200, {}, None), {"TrainingJobSummaries": summaries}

    client.meta.events.register("before-call.sagemaker.ListTrainingJobsForHyperParameterTuningJob", respond)


def _summary(name: str, objective: float, status: str = "Completed", **tuned: str) -> dict:
    return {
        "TrainingJobName": name,
        "TrainingJobStatus": status,
        "TunedHyperParameters": tuned,
        "FinalHyperParameterTuningJobObjectiveMetric": {"MetricName": "valid_acc", "Value": objective},
    }


def test_train_tune_deploy_teardown_leaves_nothing(tmp_path, s3, sagemaker_client):
    config = sm_config(tmp_path)
    backend = make_backend(config)
    ledger = Workspace(tmp_path / "ws").ledger

    # train, through the same workflow the CLI uses
    plan = train_workflow.plan(config, ledger, backend, dataset=DATASET)
    train_workflow.start(ledger, backend, plan)
    outcome = train_workflow.wait(ledger, backend, plan.request)
    assert outcome.state == "Completed"
    assert outcome.model_uri == f"s3://{BUCKET}/dogbreed/jobs/{plan.request.name}/output/model.tar.gz"
    assert ledger.get("model", plan.request.name, "sagemaker").uri == outcome.model_uri

    # tune
    tune = TuningRequest("dogbreed-tune-261127-1015-ab", config, DATASET)
    backend.start_tuning(tune)
    answer_trials(
        backend._sagemaker,
        [
            _summary(f"{tune.name}-001-aaaa", 0.61, lr="0.01", **{"batch-size": '"16"'}, epochs="3"),
            _summary(f"{tune.name}-002-bbbb", 0.74, lr="0.002", **{"batch-size": '"32"'}, epochs="5"),
            _summary(f"{tune.name}-003-cccc", None, status="Failed", lr="0.09", **{"batch-size": '"64"'}, epochs="2"),
        ],
    )
    answer = backend.wait_tuning(tune)
    assert answer["tuning_job"] == tune.name and answer["strategy"] == "Bayesian" and answer["state"] == "Completed"
    assert [t["status"] for t in answer["trials"]] == ["Completed", "Completed", "Failed"]
    assert answer["trials"][0]["params"] == {"lr": 0.01, "batch_size": 16, "epochs": 3}
    assert answer["best"] == {
        "name": f"{tune.name}-002-bbbb",
        "params": {"lr": 0.002, "batch_size": 32, "epochs": 5},
        "objective": 0.74,
    }

    # deploy the trained model
    expires = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(hours=2)
    info = backend.deploy(DeployRequest("dogbreed", outcome.model_uri, config, expires, training_job=plan.request.name))
    assert info.state == "in-service"
    kinds = {(row["kind"], row["name"]) for row in backend.list_resources()}
    assert {("endpoint", "dogbreed"), ("endpoint-config", "dogbreed"), ("model", info.extra["model"])} == kinds

    # teardown: by the ledger's name, then a sweep by tags finds nothing more
    assert backend.delete_endpoint("dogbreed") is True
    assert backend.teardown() == {"deleted": [], "not_found": []}
    assert sagemaker_client.list_models()["Models"] == []
    assert sagemaker_client.list_endpoint_configs()["EndpointConfigs"] == []
    assert sagemaker_client.list_endpoints()["Endpoints"] == []
    assert backend.list_resources() == []
