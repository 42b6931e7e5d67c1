"""A Batch Transform job that runs: `status` lists it with its price, `teardown` stops it by
name or with --all (also from a machine whose ledger never saw it, by its tags), and a typo
is still a typo. On moto_plus, whose transform jobs run until stopped."""

from __future__ import annotations

import json
import shutil

import pytest

from dogbreed.workflows.status import status
from dogbreed.workflows.teardown import listed_resources, select, teardown
from dogbreed.workflows.transform import transform
from tests.backends.sagemaker.conftest import BUCKET, make_backend, sm_config

MODEL_URI = f"s3://{BUCKET}/dogbreed/jobs/dogbreed-train-1/output/model.tar.gz"
NAME = "dogbreed-transform-261202-181500-cd34"


@pytest.fixture(autouse=True)
def _on_moto_plus(aws_plus, moto_plus):
    _, seed = moto_plus
    seed.write_text(json.dumps({"transform_status": "InProgress"}))


def _start(tmp_path, s3, predict_dir):
    s3.put_object(Bucket=BUCKET, Key="photos/Beagle_01141.jpg", Body=(predict_dir / "Beagle_01141.jpg").read_bytes())
    config = sm_config(tmp_path / "one")
    backend = make_backend(config)
    outcome = transform(
        config,
        backend,
        backend.workspace.ledger,
        [f"s3://{BUCKET}/photos"],
        tmp_path / "s.csv",
        model=MODEL_URI,
        name=NAME,
        wait=False,
    ).outcome
    assert outcome.state == "InProgress"
    return config, backend


def test_status_lists_a_running_job_and_teardown_stops_it(tmp_path, s3, sagemaker_client, predict_dir):
    config, backend = _start(tmp_path, s3, predict_dir)
    ledger = backend.workspace.ledger
    assert ledger.get("transform-job", NAME, "sagemaker").state == "InProgress"
    rows = [row for row in status(config, ledger, {"sagemaker": backend}).resources if row["kind"] == "transform-job"]
    assert [(row["name"], row["state"], row["checked"]) for row in rows] == [(NAME, "InProgress", True)]
    assert rows[0]["est_cost_per_hour"] == 0.115  # transform.instance_type, ml.m5.large x 1

    plan = select(ledger, "sagemaker", ["dogbreed-transfrom-typo", NAME])
    assert plan.jobs == [NAME] and list(plan.unknown) == ["dogbreed-transfrom-typo"]
    assert teardown(backend, ledger, plan, dry_run=True).to_json()["would_stop"] == [NAME]
    assert sagemaker_client.describe_transform_job(TransformJobName=NAME)["TransformJobStatus"] == "InProgress"
    answer = teardown(backend, ledger, plan).to_json()
    assert answer["stopped"] == [NAME]
    assert sagemaker_client.describe_transform_job(TransformJobName=NAME)["TransformJobStatus"] == "Stopped"
    assert ledger.get("transform-job", NAME, "sagemaker").state == "Stopped"
    assert [r for r in status(config, ledger, {"sagemaker": backend}).resources if r["kind"] == "transform-job"] == []


def test_teardown_all_stops_jobs_found_by_tags_alone(tmp_path, s3, sagemaker_client, predict_dir):
    _start(tmp_path, s3, predict_dir)
    shutil.rmtree(tmp_path / "one")  # the ledger that knew the job: gone
    fresh = make_backend(sm_config(tmp_path / "two"))
    listed = listed_resources(fresh)
    assert [(r["kind"], r["name"]) for r in listed if r["kind"] == "transform-job"] == [("transform-job", NAME)]
    plan = select(
        fresh.workspace.ledger, "sagemaker", all_=True, listed=[r for r in listed if r["kind"] == "endpoint"], listed_jobs=listed
    )
    assert plan.jobs == [NAME]
    assert teardown(fresh, fresh.workspace.ledger, plan).stopped == [NAME]
    assert sagemaker_client.describe_transform_job(TransformJobName=NAME)["TransformJobStatus"] == "Stopped"
