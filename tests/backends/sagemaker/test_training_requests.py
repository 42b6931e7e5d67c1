"""The exact CreateTrainingJob request, sent through the SDK to the moto server.

Each test starts a real job on moto and asserts the request that left the SDK (recorded at
the SageMaker client), that moto received it, and that `--dry-run` shows the same request.
"""

from __future__ import annotations

import io
import re
import tarfile

import pytest

from dogbreed.backends.base import TrainingRequest
from dogbreed.config.flags import hyperparameters
from dogbreed.errors import ConfigError
from dogbreed.jobspec import metric_spec
from tests.backends.sagemaker.conftest import BUCKET, DATASET, DEBUGGER_CONTAINER, ROLE, TRAINING_IMAGE, make_backend, sm_config

JOB = "dogbreed-train-261127-101500-a1b2"
CODE_URI = re.compile(rf"^s3://{BUCKET}/dogbreed/code/[0-9a-f]{{16}}/sourcedir\.tar\.gz$")
RULE_IMAGE = "503895931360.dkr.ecr.us-east-1.amazonaws.com/sagemaker-debugger-rules:latest"


def _request(config, name: str = JOB, dataset: str = DATASET) -> TrainingRequest:
    return TrainingRequest(name=name, config=config, dataset_uri=dataset, hyperparameters=hyperparameters(config))


def _start(tmp_path, *sets: str) -> tuple[dict, dict, object]:
    """(sent request, dry-run request, backend) of one training job started on moto."""
    config = sm_config(tmp_path, *sets)
    backend = make_backend(config)
    planned = backend.plan_training(_request(config))["requests"]["CreateTrainingJob"]
    backend.start_training(_request(config))
    return backend.last_requests["CreateTrainingJob"], planned, backend


def _expected(code_uri: str, **changes) -> dict:
    request = {
        "AlgorithmSpecification": {
            "TrainingInputMode": "File",
            "TrainingImage": TRAINING_IMAGE,
            "MetricDefinitions": metric_spec().metric_definitions(),
            "EnableSageMakerMetricsTimeSeries": True,
        },
        "OutputDataConfig": {"S3OutputPath": f"s3://{BUCKET}/dogbreed/jobs/"},
        "TrainingJobName": JOB,
        "StoppingCondition": {"MaxRuntimeInSeconds": 4 * 3600},
        "ResourceConfig": {"VolumeSizeInGB": 30, "InstanceCount": 1, "InstanceType": "ml.g4dn.xlarge"},
        "RoleArn": ROLE,
        "InputDataConfig": [
            {
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": DATASET,
                        "S3DataDistributionType": "FullyReplicated",
                    }
                },
                "ChannelName": "training",
            }
        ],
        "HyperParameters": {
            # The SDK JSON-encodes every value; the toolkit decodes them into train.py's argv.
            "arch": '"mobilenet_v2"',
            "weights": '"imagenet"',
            "freeze": '"backbone"',
            "head-init": '"pretrained"',
            "tta": '"none"',
            "epochs": "10",
            "batch-size": "32",
            "lr": "0.0001",
            "weight-decay": "0.01",
            "lr-schedule": '"cosine"',
            "warmup-epochs": "1.0",
            "label-smoothing": "0.1",
            "seed": "0",
            "feature-cache": '"true"',
            "augment-views": "0",
            "num-workers": "2",
            "sagemaker_submit_directory": f'"{code_uri}"',
            "sagemaker_program": '"train.py"',
            "sagemaker_container_log_level": "20",
            "sagemaker_job_name": f'"{JOB}"',
            "sagemaker_region": '"us-east-1"',
        },
        "Tags": [
            {"Key": "dogbreed:project", "Value": "dogbreed"},
            {"Key": "dogbreed:run", "Value": JOB},
            {"Key": "dogbreed:kind", "Value": "training-job"},
        ],
        "ProfilerConfig": {"DisableProfiler": True},
    }
    request.update(changes)
    return request


def test_default_request_is_exact_and_reaches_moto(tmp_path, s3, sagemaker_client):
    sent, planned, _ = _start(tmp_path)
    code_uri = sent["HyperParameters"]["sagemaker_submit_directory"].strip('"')
    assert CODE_URI.match(code_uri)
    assert sent == _expected(code_uri)
    assert planned == sent  # --dry-run shows what a real run sends
    # Debugger and Profiler are off, explicitly: no hook, no rules, profiler disabled.
    assert not {"DebugHookConfig", "DebugRuleConfigurations", "ProfilerRuleConfigurations"} & set(sent)
    received = sagemaker_client.describe_training_job(TrainingJobName=JOB)
    assert received["HyperParameters"] == sent["HyperParameters"]
    assert received["RoleArn"] == ROLE
    assert sagemaker_client.list_tags(ResourceArn=received["TrainingJobArn"])["Tags"] == sent["Tags"]


def test_source_dir_is_uploaded_once_as_the_training_package(tmp_path, s3):
    sent, _, backend = _start(tmp_path)
    code_uri = sent["HyperParameters"]["sagemaker_submit_directory"].strip('"')
    key = code_uri.split(f"s3://{BUCKET}/", 1)[1]
    body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        names = set(tar.getnames())
    assert {"train.py", "inference.py", "breedkit/metrics.json"} <= names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    uploads = [line for line in backend.reporter.lines if line.startswith("uploaded")]
    assert len(uploads) == 1
    # A second job with the same package reuses the object (content-addressed).
    config = sm_config(tmp_path)
    again = make_backend(config)
    again.start_training(_request(config, name="dogbreed-train-261127-101501-c3d4"))
    assert not [line for line in again.reporter.lines if line.startswith("uploaded")]
    assert again.last_requests["CreateTrainingJob"]["HyperParameters"]["sagemaker_submit_directory"] == f'"{code_uri}"'


def test_debugger_and_profiler_sections_when_on(tmp_path, s3):
    sent, planned, _ = _start(tmp_path, "sagemaker.debugger=true", "sagemaker.profiler=true", *DEBUGGER_CONTAINER)
    assert planned == sent
    assert sent["HyperParameters"]["debugger"] == '"true"'  # train.py registers smdebug's hook
    hook = sent["DebugHookConfig"]
    assert hook["S3OutputPath"] == f"s3://{BUCKET}/dogbreed/jobs/"
    # The SDK keeps collections in a set: compare them in a fixed order.
    assert sorted(hook["CollectionConfigurations"], key=lambda c: c["CollectionName"]) == [
        {"CollectionName": "gradients", "CollectionParameters": {"save_interval": "50"}},
        {"CollectionName": "losses", "CollectionParameters": {"save_interval": "10"}},
        {"CollectionName": "relu_input", "CollectionParameters": {"include_regex": ".*relu_input", "save_interval": "500"}},
    ]
    assert sent["DebugRuleConfigurations"] == [
        {"RuleConfigurationName": name, "RuleEvaluatorImage": RULE_IMAGE, "RuleParameters": {"rule_to_invoke": name}}
        for name in ("VanishingGradient", "Overfit", "Overtraining", "PoorWeightInitialization", "LossNotDecreasing")
    ]
    assert sent["ProfilerConfig"] == {
        "S3OutputPath": f"s3://{BUCKET}/dogbreed/jobs/",
        "DisableProfiler": False,
        "ProfilingIntervalInMilliseconds": 500,
    }
    assert [r["RuleConfigurationName"] for r in sent["ProfilerRuleConfigurations"]] == ["LowGPUUtilization", "ProfilerReport"]
    assert {r["RuleEvaluatorImage"] for r in sent["ProfilerRuleConfigurations"]} == {RULE_IMAGE}


def test_debugger_on_a_container_without_smdebug_is_refused_before_anything_is_sent(tmp_path, s3, sagemaker_client):
    """PyTorch 2.x training containers have no smdebug: the hook would record nothing. The
    dry run and the real call refuse alike, with the reason and the alternative."""
    config = sm_config(tmp_path, "sagemaker.debugger=true")
    backend = make_backend(config)
    expected = (
        "sagemaker.debugger=true records nothing on the PyTorch 2.8.0 training container: it has no smdebug, and "
        "smdebug cannot be installed there (it pins protobuf<=3.20.3 and NumPy<2, the container needs protobuf>=5.28 "
        "and NumPy 2); leave sagemaker.debugger=false: train.py records losses and gradient norms itself "
        "(records.jsonl) and `dogbreed report` judges them with the same rules"
    )
    for attempt in (backend.plan_training, backend.start_training):
        with pytest.raises(ConfigError) as caught:
            attempt(_request(config))
        assert str(caught.value) == expected
    assert sagemaker_client.list_training_jobs()["TrainingJobSummaries"] == []
    assert s3.list_objects_v2(Bucket=BUCKET).get("KeyCount", 0) == 0  # not even the code


def test_debugger_with_spot_on_several_instances_is_refused(tmp_path, s3, sagemaker_client):
    config = sm_config(
        tmp_path, "sagemaker.debugger=true", "sagemaker.spot=true", "sagemaker.instance_count=2", *DEBUGGER_CONTAINER
    )
    with pytest.raises(ConfigError, match=r"^sagemaker.debugger=true with sagemaker.spot=true and sagemaker.instance_count>1"):
        make_backend(config).start_training(_request(config))
    assert sagemaker_client.list_training_jobs()["TrainingJobSummaries"] == []
    # Each alone is fine: spot on several instances, or Debugger with spot on one.
    for sets in (("sagemaker.spot=true", "sagemaker.instance_count=2"), ("sagemaker.debugger=true", "sagemaker.spot=true")):
        alone = sm_config(tmp_path, *sets, *DEBUGGER_CONTAINER)
        assert make_backend(alone).plan_training(_request(alone))["requests"]["CreateTrainingJob"]


def test_debugger_alone_keeps_the_profiler_disabled(tmp_path, s3):
    sent, _, _ = _start(tmp_path, "sagemaker.debugger=true", *DEBUGGER_CONTAINER)
    assert sent["ProfilerConfig"] == {"DisableProfiler": True}
    assert "ProfilerRuleConfigurations" not in sent
    assert len(sent["DebugRuleConfigurations"]) == 5


def test_profiler_alone_has_no_debugger_hook(tmp_path, s3):
    sent, _, _ = _start(tmp_path, "sagemaker.profiler=true")
    assert "DebugHookConfig" not in sent and "DebugRuleConfigurations" not in sent
    assert "debugger" not in sent["HyperParameters"]
    assert sent["ProfilerConfig"]["DisableProfiler"] is False


def test_spot_sets_max_wait_and_the_jobs_own_checkpoint_folder(tmp_path, s3):
    sent, planned, _ = _start(tmp_path, "sagemaker.spot=true", "sagemaker.max_run=2h", "sagemaker.max_wait=3h")
    assert planned == sent
    assert sent["EnableManagedSpotTraining"] is True
    assert sent["StoppingCondition"] == {"MaxRuntimeInSeconds": 7200, "MaxWaitTimeInSeconds": 10800}
    assert sent["CheckpointConfig"] == {"S3Uri": f"s3://{BUCKET}/dogbreed/checkpoints/{JOB}/"}


def test_spot_max_wait_below_max_run_is_a_config_error(tmp_path):
    config = sm_config(tmp_path, "sagemaker.spot=true", "sagemaker.max_run=4h", "sagemaker.max_wait=1h")
    with pytest.raises(ConfigError, match="max_wait"):
        make_backend(config).plan_training(_request(config))


def test_several_instances_run_torch_distributed(tmp_path, s3):
    sent, _, _ = _start(tmp_path, "sagemaker.instance_count=2")
    assert sent["ResourceConfig"]["InstanceCount"] == 2
    assert sent["HyperParameters"]["sagemaker_torch_distributed_enabled"] == "true"
    assert sent["HyperParameters"]["sagemaker_instance_type"] == '"ml.g4dn.xlarge"'


def test_torch_distributed_on_cpu_instances_is_refused_in_one_line(tmp_path):
    config = sm_config(tmp_path, "sagemaker.instance_count=2", "sagemaker.instance_type.train=ml.c5.xlarge")
    with pytest.raises(ConfigError) as caught:
        make_backend(config).plan_training(_request(config))
    assert "GPU and Trainium" in str(caught.value) and "\n" not in str(caught.value)


def test_a_local_weights_file_travels_as_its_own_channel(tmp_path, s3, imagenet_weights):
    sent, planned, backend = _start(tmp_path, f"model.weights={imagenet_weights}")
    assert planned == sent
    channels = {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in sent["InputDataConfig"]}
    assert re.match(rf"^s3://{BUCKET}/dogbreed/files/[0-9a-f]{{16}}/{imagenet_weights.name}$", channels["weights"])
    assert sent["HyperParameters"]["weights"] == f'"{imagenet_weights.name}"'  # resolved in SM_CHANNEL_WEIGHTS
    key = channels["weights"].split(f"s3://{BUCKET}/", 1)[1]
    assert s3.head_object(Bucket=BUCKET, Key=key)["ContentLength"] == imagenet_weights.stat().st_size


def test_weights_on_s3_are_a_channel_without_upload(tmp_path, s3):
    sent, _, _ = _start(tmp_path, f"model.weights=s3://{BUCKET}/weights/resnet18.pth")
    channels = {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in sent["InputDataConfig"]}
    assert channels["weights"] == f"s3://{BUCKET}/weights/resnet18.pth"
    assert sent["HyperParameters"]["weights"] == '"resnet18.pth"'


def test_a_local_dataset_is_refused_with_the_fix(tmp_path):
    config = sm_config(tmp_path)
    with pytest.raises(Exception, match="ingest it there"):
        make_backend(config).plan_training(_request(config, dataset=str(tmp_path)))


def test_an_existing_job_is_followed_not_recreated(tmp_path, s3, sagemaker_client):
    _, _, backend = _start(tmp_path)
    config = sm_config(tmp_path)
    again = make_backend(config)
    again.start_training(_request(config))  # moto says Completed: nothing is sent
    assert again.last_requests == {}
    assert any("already exists" in line for line in again.reporter.lines)


def test_without_a_bucket_the_sdks_default_bucket_is_created_and_used(tmp_path, s3):
    config = sm_config(tmp_path)
    config = config.model_copy(update={"sagemaker": config.sagemaker.model_copy(update={"bucket": None})})
    backend = make_backend(config)
    backend.start_training(_request(config))
    sent = backend.last_requests["CreateTrainingJob"]
    default = "sagemaker-us-east-1-123456789012"
    assert sent["OutputDataConfig"]["S3OutputPath"] == f"s3://{default}/dogbreed/jobs/"
    code_uri = sent["HyperParameters"]["sagemaker_submit_directory"].strip('"')
    assert s3.head_object(Bucket=default, Key=code_uri.split(f"s3://{default}/", 1)[1])["ContentLength"] > 0
