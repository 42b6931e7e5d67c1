"""`dogbreed transform --backend sagemaker`: the exact CreateModel and CreateTransformJob
requests (dry run and real, on moto), the upload of checked local photos, the ledger entry,
and the job's `.out` answers read back into the same scores file a local run writes.

moto runs no container: its transform jobs complete at once and write nothing, so a test
puts the answers where the job would (`<input name>.out` under the output path) first."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from dogbreed.errors import UsageError
from dogbreed.serving.scores_file import read_rows
from dogbreed.workflows.status import status
from dogbreed.workflows.transform import transform
from tests.backends.sagemaker.conftest import BUCKET, INFERENCE_IMAGE, ROLE, make_backend, sm_config

MODEL_URI = f"s3://{BUCKET}/dogbreed/jobs/dogbreed-train-1/output/model.tar.gz"
NAME = "dogbreed-transform-261202-180000-ab12"
ROOT = f"s3://{BUCKET}/dogbreed/transform/{NAME}"
TAGS = [
    {"Key": "dogbreed:project", "Value": "dogbreed"},
    {"Key": "dogbreed:run", "Value": NAME},
    {"Key": "dogbreed:kind", "Value": "transform-job"},
]


def _answer(label: str, index: int, probability: float, dog: float) -> bytes:
    """What the model's inference.py answers for one image (Accept application/json)."""
    return json.dumps(
        {"predictions": [{"top": [{"label": label, "index": index, "probability": probability}], "dog_probability": dog}]}
    ).encode()


def _expected_requests(input_uri: str, **job: object) -> dict:
    return {
        "CreateModel": {
            "ModelName": NAME,
            "ExecutionRoleArn": ROLE,
            "PrimaryContainer": {
                "Image": INFERENCE_IMAGE,  # the CPU image for ml.m5.large, as deploy's
                "Environment": {
                    "SAGEMAKER_PROGRAM": "inference.py",
                    "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
                    "DOGBREED_TOP_K": "5",
                    "DOGBREED_RESPONSE": "top_k",
                    "SAGEMAKER_CONTAINER_LOG_LEVEL": "20",
                    "SAGEMAKER_REGION": "us-east-1",
                },
                "ModelDataUrl": MODEL_URI,
            },
            "Tags": TAGS,
        },
        "CreateTransformJob": {
            "TransformJobName": NAME,
            "ModelName": NAME,
            "BatchStrategy": "SingleRecord",
            "MaxPayloadInMB": 6,
            "ModelClientConfig": {"InvocationsTimeoutInSeconds": 60, "InvocationsMaxRetries": 1},
            "TransformInput": {
                "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": input_uri}},
                "ContentType": "application/x-image",
                "CompressionType": "None",
                "SplitType": "None",
            },
            "TransformOutput": {"S3OutputPath": f"{ROOT}/output/", "Accept": "application/json", "AssembleWith": "None"},
            "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
            "Tags": TAGS,
            **job,
        },
    }


@pytest.fixture
def photos(tmp_path, predict_dir) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("Beagle_01141.jpg", "cat_01.jpg"):
        shutil.copy(predict_dir / name, folder / name)
    (folder / "broken.jpg").write_bytes((predict_dir / "Boxer_02426.jpg").read_bytes()[:1500])
    return folder


def test_local_photos_dry_run_then_real_job_on_moto(tmp_path, s3, sagemaker_client, photos):
    config = sm_config(tmp_path)
    backend = make_backend(config)
    ledger = backend.workspace.ledger
    output = tmp_path / "scores.jsonl"
    plan = transform(config, backend, ledger, [str(photos)], output, model=MODEL_URI, name=NAME, dry_run=True).plan
    assert plan["requests"] == _expected_requests(f"{ROOT}/input/")
    assert plan["cost"]["usd_per_hour"] == 0.115 and plan["est_cost"] == round(0.115 * 0.25, 4)
    assert plan["uploads"] == [{"images": 3, "to": f"{ROOT}/input/"}]
    assert sagemaker_client.list_transform_jobs()["TransformJobSummaries"] == []  # the dry run called nothing
    assert not output.exists()

    # The container's answer for the beagle; the cat gets none (as if the job failed on it).
    s3.put_object(
        Bucket=BUCKET,
        Key=f"dogbreed/transform/{NAME}/output/000000-Beagle_01141.jpg.out",
        Body=_answer("Beagle", 3, 0.91, 0.97),
    )
    outcome = transform(config, backend, ledger, [str(photos)], output, model=MODEL_URI, name=NAME).outcome
    assert backend.last_requests == plan["requests"]  # what ran is what the plan showed
    uploaded = s3.list_objects_v2(Bucket=BUCKET, Prefix=f"dogbreed/transform/{NAME}/input/")["Contents"]
    # The broken photo was refused here: the job would have failed on it.
    assert sorted(obj["Key"].rsplit("/", 1)[1] for obj in uploaded) == ["000000-Beagle_01141.jpg", "000002-cat_01.jpg"]
    assert outcome.state == "Completed" and outcome.scored == 3
    assert outcome.input_uri == f"{ROOT}/input/" and outcome.output_uri == f"{ROOT}/output/"

    rows = {Path(row["image"]).name: row for row in read_rows(output, "jsonl")}
    assert rows["Beagle_01141.jpg"]["top"] == [{"label": "Beagle", "index": 3, "probability": 0.91}]
    assert rows["Beagle_01141.jpg"]["dog_probability"] == 0.97 and rows["Beagle_01141.jpg"]["is_dog"] is True
    assert rows["broken.jpg"]["error"]  # the image check's own words
    assert rows["cat_01.jpg"]["error"].startswith(f"no answer from transform job {NAME}")
    assert sorted(Path(e["image"]).name for e in outcome.errors) == ["broken.jpg", "cat_01.jpg"]

    record = ledger.get("transform-job", NAME, "sagemaker")
    assert record.state == "Completed" and record.uri == f"arn:aws:sagemaker:us-east-1:123456789012:transform-job/{NAME}"
    assert record.meta["instance_type"] == "ml.m5.large" and record.meta["output_uri"] == f"{ROOT}/output/"
    # The model served only the job: deleted once it ended. The job stopped by itself.
    assert sagemaker_client.list_models()["Models"] == []
    assert status(config, ledger, {"sagemaker": backend}).resources == []

    # A rerun with the same output uploads and starts nothing for the images already there
    # (the broken one included: it would be refused again).
    again = transform(config, backend, ledger, [str(photos)], output, model=MODEL_URI, name=NAME + "-2").outcome
    assert (again.skipped, again.scored, again.state) == (3, 0, "Completed")
    assert len(sagemaker_client.list_transform_jobs()["TransformJobSummaries"]) == 1


def test_an_s3_prefix_is_the_jobs_input_as_it_is(tmp_path, s3, sagemaker_client, predict_dir):
    for name in ("Beagle_01141.jpg", "cat_01.jpg"):
        s3.put_object(Bucket=BUCKET, Key=f"photos/{name}", Body=(predict_dir / name).read_bytes())
    s3.put_object(
        Bucket=BUCKET, Key=f"dogbreed/transform/{NAME}/output/Beagle_01141.jpg.out", Body=_answer("Beagle", 3, 0.8, 0.9)
    )
    s3.put_object(Bucket=BUCKET, Key=f"dogbreed/transform/{NAME}/output/cat_01.jpg.out", Body=_answer("Beagle", 3, 0.3, 0.04))
    config = sm_config(
        tmp_path, "transform.instance_type=ml.c5.xlarge", "transform.instance_count=2", "transform.max_concurrent_transforms=4"
    )
    backend = make_backend(config)
    output = tmp_path / "scores.csv"
    outcome = transform(
        config, backend, backend.workspace.ledger, [f"s3://{BUCKET}/photos"], output, model=MODEL_URI, name=NAME
    ).outcome
    sent = backend.last_requests["CreateTransformJob"]
    expected = _expected_requests(f"s3://{BUCKET}/photos/", MaxConcurrentTransforms=4)["CreateTransformJob"]
    expected["TransformResources"] = {"InstanceType": "ml.c5.xlarge", "InstanceCount": 2}
    assert sent == expected
    assert s3.list_objects_v2(Bucket=BUCKET, Prefix="dogbreed/transform/")["KeyCount"] == 2  # only the answers
    rows = {row["image"]: row for row in read_rows(output, "csv")}
    assert rows[f"s3://{BUCKET}/photos/cat_01.jpg"]["is_dog"] is False
    assert rows[f"s3://{BUCKET}/photos/Beagle_01141.jpg"]["top"] == [{"label": "Beagle", "probability": 0.8}]
    assert outcome.errors == [] and outcome.instance_count == 2
    # A rerun into the same file: the job reads the whole prefix again (S3Prefix), but rows
    # already in the file are not written twice.
    again = transform(
        config, backend, backend.workspace.ledger, [f"s3://{BUCKET}/photos"], output, model=MODEL_URI, name=NAME + "-2"
    ).outcome
    assert (again.skipped, again.scored, again.errors) == (2, 0, [])
    assert len(read_rows(output, "csv")) == 2 and output.read_text().count("\n") == 3


def test_no_wait_returns_the_running_job_and_the_ledger_has_it(tmp_path, s3, sagemaker_client, photos):
    config = sm_config(tmp_path)
    backend = make_backend(config)
    outcome = transform(
        config, backend, backend.workspace.ledger, [str(photos)], tmp_path / "s.jsonl", model=MODEL_URI, name=NAME, wait=False
    ).outcome
    assert outcome.extra["arn"].endswith(f"transform-job/{NAME}")
    assert backend.workspace.ledger.get("transform-job", NAME, "sagemaker") is not None
    assert sagemaker_client.describe_transform_job(TransformJobName=NAME)["ModelName"] == NAME
    # Tagged, so status and teardown find it from AWS alone.
    tags = sagemaker_client.list_tags(ResourceArn=outcome.extra["arn"])["Tags"]
    assert {"Key": "dogbreed:kind", "Value": "transform-job"} in tags
    assert [Path(row["image"]).name for row in read_rows(tmp_path / "s.jsonl", "jsonl")] == ["broken.jpg"]

    # The same command again, with the job's name: it follows that job (SageMaker never
    # reuses a name) and reads its answers back; nothing is uploaded or created twice.
    for name, answer in (
        ("000000-Beagle_01141.jpg", _answer("Beagle", 3, 0.9, 0.99)),
        ("000002-cat_01.jpg", _answer("Beagle", 3, 0.2, 0.05)),
    ):
        s3.put_object(Bucket=BUCKET, Key=f"dogbreed/transform/{NAME}/output/{name}.out", Body=answer)
    backend.last_requests = {}
    collected = transform(
        config, backend, backend.workspace.ledger, [str(photos)], tmp_path / "s.jsonl", model=MODEL_URI, name=NAME
    ).outcome
    assert backend.last_requests == {} and len(sagemaker_client.list_transform_jobs()["TransformJobSummaries"]) == 1
    assert (collected.state, collected.scored, collected.skipped) == ("Completed", 2, 1)
    rows = {Path(row["image"]).name: row for row in read_rows(tmp_path / "s.jsonl", "jsonl")}
    assert rows["cat_01.jpg"]["is_dog"] is False and rows["Beagle_01141.jpg"]["top"][0]["probability"] == 0.9
    assert [Path(e["image"]).name for e in collected.errors] == ["broken.jpg"]  # its row from the first run
    assert sagemaker_client.list_models()["Models"] == []


def test_one_prefix_per_job_and_not_mixed_with_files(tmp_path, s3, photos):
    config = sm_config(tmp_path)
    backend = make_backend(config)
    ledger = backend.workspace.ledger
    out = tmp_path / "s.csv"
    with pytest.raises(UsageError, match="either s3:// prefixes or local images"):
        transform(config, backend, ledger, [str(photos), f"s3://{BUCKET}/x"], out, model=MODEL_URI, dry_run=True)
    with pytest.raises(UsageError, match="one S3 prefix; got 2"):
        transform(config, backend, ledger, [f"s3://{BUCKET}/x", f"s3://{BUCKET}/y"], out, model=MODEL_URI, dry_run=True)


def test_preflight_refuses_an_instance_type_sagemaker_has_not_before_anything_is_sent(tmp_path, s3, sagemaker_client, photos):
    from dogbreed.aws.preflight import PreflightError

    config = sm_config(tmp_path, "sagemaker.preflight=true", "transform.instance_type=ml.m5.huge")
    backend = make_backend(config)
    with pytest.raises(PreflightError) as refused:
        transform(config, backend, backend.workspace.ledger, [str(photos)], tmp_path / "s.csv", model=MODEL_URI, name=NAME)
    assert any(
        p.startswith("transform.instance_type: 'ml.m5.huge' is not a SageMaker instance type") for p in refused.value.problems
    )
    assert sagemaker_client.list_transform_jobs()["TransformJobSummaries"] == []
    assert s3.list_objects_v2(Bucket=BUCKET, Prefix="dogbreed/transform/")["KeyCount"] == 0


def test_a_prefix_with_more_than_photos_is_refused_before_the_job(tmp_path, s3, sagemaker_client, predict_dir):
    s3.put_object(Bucket=BUCKET, Key="photos/Beagle_01141.jpg", Body=(predict_dir / "Beagle_01141.jpg").read_bytes())
    s3.put_object(Bucket=BUCKET, Key="photos/notes.txt", Body=b"the model would refuse this and fail the job")
    config = sm_config(tmp_path)
    backend = make_backend(config)
    with pytest.raises(UsageError, match=r"photos/ holds 1 object\(s\) that are not photos \(notes.txt\)"):
        transform(config, backend, backend.workspace.ledger, [f"s3://{BUCKET}/photos"], tmp_path / "s.csv", model=MODEL_URI)
    with pytest.raises(UsageError, match="holds no objects"):
        transform(config, backend, backend.workspace.ledger, [f"s3://{BUCKET}/nothing"], tmp_path / "s.csv", model=MODEL_URI)
    assert sagemaker_client.list_transform_jobs()["TransformJobSummaries"] == []


def test_the_jobs_model_answers_top_k_whatever_deploy_response_says(tmp_path, photos):
    config = sm_config(tmp_path, "deploy.response=probabilities", "deploy.top_k=2")
    backend = make_backend(config)
    plan = transform(
        config, backend, backend.workspace.ledger, [str(photos)], tmp_path / "s.csv", model=MODEL_URI, dry_run=True
    ).plan
    environment = plan["requests"]["CreateModel"]["PrimaryContainer"]["Environment"]
    assert (environment["DOGBREED_RESPONSE"], environment["DOGBREED_TOP_K"]) == ("top_k", "2")


def test_a_photo_over_max_payload_is_uploaded_as_predict_would_send_it(tmp_path, s3, sagemaker_client, predict_dir):
    """Shrunk, as predict shrinks it (serving/upload.py), not refused: the job reads the very
    body predict sends; only what cannot be shrunk is an error row."""
    from PIL import Image

    from dogbreed.serving.upload import prepare

    folder = tmp_path / "photos"
    folder.mkdir()
    noise = Image.merge("RGB", [Image.effect_noise((700, 700), 100 + band) for band in range(3)])
    noise.save(folder / "noise.png", compress_level=0)  # 1.47 MB: over a 1 MB limit
    (folder / "junk.jpg").write_bytes(b"\0" * (2**20 + 1))
    shutil.copy(predict_dir / "Beagle_01141.jpg", folder / "beagle.jpg")
    config = sm_config(tmp_path, "transform.max_payload_mb=1")
    backend = make_backend(config)
    output = tmp_path / "scores.jsonl"
    outcome = transform(config, backend, backend.workspace.ledger, [str(folder)], output, model=MODEL_URI, name=NAME).outcome
    prefix = f"dogbreed/transform/{NAME}/input/"
    uploaded = {
        obj["Key"][len(prefix) :]: s3.get_object(Bucket=BUCKET, Key=obj["Key"])["Body"].read()
        for obj in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix)["Contents"]
    }
    assert sorted(uploaded) == ["000000-beagle.jpg", "000002-noise.png"]
    for name, body in uploaded.items():
        assert body == prepare(folder / name.split("-", 1)[1], 2**20, config.data.max_image_bytes).body, name
    assert uploaded["000002-noise.png"][:3] == b"\xff\xd8\xff" and len(uploaded["000002-noise.png"]) <= 2**20
    assert uploaded["000000-beagle.jpg"] == (folder / "beagle.jpg").read_bytes()
    errors = {Path(row["image"]).name: row["error"] for row in outcome.errors}
    assert "not an image Pillow can shrink" in errors["junk.jpg"]
    assert not list((backend.workspace.root / "transform").iterdir())  # the shrunk copies are gone
