"""The PyTorchModel of a trained model.tar.gz and how it is deployed (real-time or serverless).

train.py already writes code/inference.py (with its sibling modules) into model.tar.gz, so
the model deploys with no repacking. Giving the SDK `entry_point="inference.py"` would make
it repack anyway: download model.tar.gz, copy a local inference.py into code/, upload a
second model.tar.gz (sagemaker/model.py, Model._upload_code with repack=True for PyTorch
>= 1.2). Instead we set the two variables the SDK would have set after repacking, so the
inference container runs code/inference.py from the model itself; same container, same
handler, no S3 round trip, and a dry run that touches nothing.
"""

from __future__ import annotations

from typing import Any

from dogbreed.aws.session import import_sdk
from dogbreed.config import Config
from dogbreed.jobspec import INFERENCE_ENTRY

MODEL_CODE_DIR = "/opt/ml/model/code"


def inference_environment(config: Config) -> dict[str, str]:
    """SAGEMAKER_PROGRAM / SAGEMAKER_SUBMIT_DIRECTORY, as after the SDK's own repack, plus the
    deploy settings inference.py reads (the same variables the local endpoint gets)."""
    return {
        "SAGEMAKER_PROGRAM": INFERENCE_ENTRY,
        "SAGEMAKER_SUBMIT_DIRECTORY": MODEL_CODE_DIR,
        **config.deploy.serving_environment(),
    }


def build_model(config: Config, session: Any, *, model_uri: str, name: str, role: str, s3_root: str) -> Any:
    """A sagemaker.pytorch.PyTorchModel serving `model_uri` (an s3:// model.tar.gz)."""
    import_sdk()
    from sagemaker.pytorch import PyTorchModel

    sm = config.sagemaker
    return PyTorchModel(
        model_data=model_uri,
        role=role,
        framework_version=sm.inference_framework_version,
        py_version=sm.py_version,
        env=inference_environment(config),
        name=name,
        # Where the SDK would put code; naming it keeps the SDK from looking up (or creating)
        # its default bucket, an S3 call, even though nothing is uploaded.
        code_location=f"{s3_root}/models/",
        sagemaker_session=session,
    )


def deploy_arguments(config: Config, *, endpoint: str, tags: list[dict[str, str]]) -> dict[str, Any]:
    """Keyword arguments of PyTorchModel.deploy: real-time instances or a serverless config."""
    import_sdk()
    from sagemaker.serverless import ServerlessInferenceConfig

    kwargs: dict[str, Any] = {"endpoint_name": endpoint, "tags": tags, "wait": False}
    if config.deploy.serverless:
        sized = config.deploy.serverless_config
        kwargs["serverless_inference_config"] = ServerlessInferenceConfig(
            memory_size_in_mb=sized.memory_mb, max_concurrency=sized.max_concurrency
        )
    else:
        kwargs["instance_type"] = config.sagemaker.instance_type.endpoint
        kwargs["initial_instance_count"] = config.sagemaker.endpoint_instance_count
    return kwargs


def send_endpoint_update(config: Config, model: Any, *, endpoint: str, endpoint_config: str, tags: list[dict[str, str]]) -> None:
    """Redeploy in place, through the model's SDK session: CreateModel, CreateEndpointConfig
    under a new name (a live endpoint's config cannot change), then UpdateEndpoint. The SDK's
    Predictor.update_endpoint does the same, but first describes the endpoint: a call a dry
    run must not make. Nothing is waited for; nothing old is deleted here."""
    session = model.sagemaker_session
    kwargs = deploy_arguments(config, endpoint=endpoint, tags=tags)
    serverless = kwargs.get("serverless_inference_config")
    model.create(instance_type=kwargs.get("instance_type"), serverless_inference_config=serverless, tags=tags)
    session.create_endpoint_config(
        name=endpoint_config,
        model_name=model.name,
        initial_instance_count=kwargs.get("initial_instance_count"),
        instance_type=kwargs.get("instance_type"),
        tags=tags,
        serverless_inference_config_dict=serverless._to_request_dict() if serverless else None,
    )
    session.sagemaker_client.update_endpoint(EndpointName=endpoint, EndpointConfigName=endpoint_config)
