"""sagemaker.network_isolation: the job runs without internet, so `weights: imagenet` is
resolved on this machine (torchvision's cache, $TORCH_HOME) and staged to S3 once as the
weights channel; the pre-flight says so, and says when this machine cannot fetch them."""

from __future__ import annotations

import re
import shutil

import pytest

from dogbreed.aws.preflight import PreflightError
from dogbreed.backends.base import TrainingRequest, TuningRequest
from dogbreed.backends.imagenet_weights import imagenet_weights_url
from dogbreed.config.flags import hyperparameters
from tests.backends.sagemaker.conftest import BUCKET, DATASET, make_backend, sm_config, upload_dataset
from tests.backends.sagemaker.test_preflight import FakeRehearsal

JOB = "dogbreed-train-261127-101500-a1b2"
ISOLATED = ("sagemaker.network_isolation=true", "model.arch=mobilenet_v2", "model.weights=imagenet")


@pytest.fixture
def torch_cache(tmp_path, monkeypatch, imagenet_weights):
    """torchvision's cache with mobilenet_v2's ImageNet weights in it, under the file name
    torchvision downloads them as (the vendored fp16 copy stands in for the download)."""
    home = tmp_path / "torch"
    monkeypatch.setenv("TORCH_HOME", str(home))
    name = imagenet_weights_url("mobilenet_v2").rsplit("/", 1)[-1]
    target = home / "hub" / "checkpoints" / name
    target.parent.mkdir(parents=True)
    shutil.copyfile(imagenet_weights, target)
    return target


def _request(config, name: str = JOB) -> TrainingRequest:
    return TrainingRequest(name=name, config=config, dataset_uri=DATASET, hyperparameters=hyperparameters(config))


def test_imagenet_weights_go_from_this_machine_as_a_channel_uploaded_once(tmp_path, s3, torch_cache):
    config = sm_config(tmp_path, *ISOLATED)
    backend = make_backend(config)
    planned = backend.plan_training(_request(config))["requests"]["CreateTrainingJob"]
    backend.start_training(_request(config))
    sent = backend.last_requests["CreateTrainingJob"]
    assert planned == sent

    assert sent["EnableNetworkIsolation"] is True
    channels = {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in sent["InputDataConfig"]}
    assert re.match(rf"^s3://{BUCKET}/dogbreed/files/[0-9a-f]{{16}}/{torch_cache.name}$", channels["weights"])
    assert sent["HyperParameters"]["weights"] == f'"{torch_cache.name}"'  # train.py finds it in SM_CHANNEL_WEIGHTS
    key = channels["weights"].split(f"s3://{BUCKET}/", 1)[1]
    assert s3.head_object(Bucket=BUCKET, Key=key)["ContentLength"] == torch_cache.stat().st_size
    # Without internet the container cannot fetch source_dir from S3 itself: the SDK makes it a channel.
    assert (
        "code" in channels
        and sent["HyperParameters"]["sagemaker_submit_directory"] == '"/opt/ml/input/data/code/sourcedir.tar.gz"'
    )

    again = make_backend(config)
    again.start_training(_request(config, name="dogbreed-train-261127-101501-c3d4"))
    assert not [line for line in again.reporter.lines if line.startswith("uploaded") and torch_cache.name in line]
    assert {
        c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"]
        for c in again.last_requests["CreateTrainingJob"]["InputDataConfig"]
    }["weights"] == channels["weights"]


def test_tuning_trials_get_the_same_channel(tmp_path, s3, torch_cache):
    config = sm_config(tmp_path, *ISOLATED)
    plan = make_backend(config).plan_tuning(TuningRequest("dogbreed-tune-1", config, DATASET))
    definition = plan["requests"]["CreateHyperParameterTuningJob"]["TrainingJobDefinition"]
    assert definition["EnableNetworkIsolation"] is True
    channels = {c["ChannelName"] for c in definition["InputDataConfig"]}
    assert {"training", "weights", "code"} <= channels
    assert definition["StaticHyperParameters"]["weights"] == f'"{torch_cache.name}"'


def test_without_isolation_the_job_downloads_them_itself(tmp_path, s3):
    config = sm_config(tmp_path, "model.weights=imagenet")
    sent = make_backend(config).plan_training(_request(config))["requests"]["CreateTrainingJob"]
    assert "EnableNetworkIsolation" not in sent or sent["EnableNetworkIsolation"] is False
    assert sent["HyperParameters"]["weights"] == '"imagenet"'
    assert [c["ChannelName"] for c in sent["InputDataConfig"]] == ["training"]


def test_the_preflight_warns_where_the_weights_come_from(tmp_path, s3, dogs_dir, torch_cache):
    upload_dataset(s3, dogs_dir)
    config = sm_config(tmp_path, "sagemaker.preflight=true", *ISOLATED)
    backend = make_backend(config, rehearse=FakeRehearsal(tmp_path))
    backend.preflight_training(_request(config))
    assert (
        "warning: pre-flight: sagemaker.network_isolation=true: the job has no internet, so the ImageNet weights of "
        f"mobilenet_v2 go from this machine ({torch_cache}) to S3 once, as the weights channel"
    ) in backend.reporter.lines


def test_the_preflight_names_weights_this_machine_cannot_fetch(tmp_path, s3, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-torch"))
    # download.pytorch.org through a proxy that refuses: this machine has no internet either
    # (moto is plain http on 127.0.0.1, so only the https download is affected).
    monkeypatch.setenv("https_proxy", "http://127.0.0.1:9")
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    config = sm_config(tmp_path, "sagemaker.preflight=true", *ISOLATED)
    backend = make_backend(config, rehearse=FakeRehearsal(tmp_path))
    with pytest.raises(PreflightError) as caught:
        backend.preflight_training(_request(config))
    (problem,) = caught.value.problems
    assert problem.startswith(f"cannot download the ImageNet weights of mobilenet_v2 from {imagenet_weights_url('mobilenet_v2')}")
    assert "the job has no internet (sagemaker.network_isolation=true), so they must come from here" in problem
