"""The exact requests the SageMaker SDK sends, captured where it sends them.

The SDK builds every request as a dict and hands it to `sagemaker.Session.sagemaker_client`
(`_get_train_args` -> `Session.train` -> `sagemaker_client.create_training_job(**request)`).
A RecordingClient stands in that place:
- live, it records each call and forwards it to the real boto3 client;
- dry, it records each call and answers the create_* calls the SDK makes with a synthetic
  ARN; any other call (a describe, a wait) is refused, so a dry run cannot reach AWS even
  through an SDK path we did not expect.
Either way each request is checked against the service model first (botocore's own
validator), so a dry run fails the same way the real call would.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dogbreed.errors import DogbreedError

# What each create call answers, dry: the one key the SDK reads back, and the ARN's resource type.
_DRY_ANSWERS = {
    "CreateTrainingJob": ("TrainingJobArn", "training-job"),
    "CreateHyperParameterTuningJob": ("HyperParameterTuningJobArn", "hyper-parameter-tuning-job"),
    "CreateModel": ("ModelArn", "model"),
    "CreateEndpointConfig": ("EndpointConfigArn", "endpoint-config"),
    "CreateEndpoint": ("EndpointArn", "endpoint"),
    "UpdateEndpoint": ("EndpointArn", "endpoint"),
    "CreateTransformJob": ("TransformJobArn", "transform-job"),
}
_NAME_KEYS = (  # a transform job names its model too: its own name comes first
    "TransformJobName",
    "TrainingJobName",
    "HyperParameterTuningJobName",
    "ModelName",
    "EndpointConfigName",
    "EndpointName",
)


class DryRunViolation(DogbreedError):
    """The SDK tried to call AWS during a dry run."""


@dataclass(frozen=True)
class RecordedCall:
    operation: str  # the API name, e.g. CreateTrainingJob
    params: dict[str, Any]


class RecordingClient:
    """A boto3 SageMaker client that records every call (see the module docstring)."""

    def __init__(self, client: Any, *, dry_run: bool, account_id: str = "000000000000") -> None:
        # `client` is a real botocore client; dry, only its service model is used.
        self._client = client
        self._dry_run = dry_run
        self._account_id = account_id
        self.calls: list[RecordedCall] = []

    @property
    def meta(self) -> Any:
        return self._client.meta

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        operation = self._client.meta.method_to_api_mapping.get(name)
        if operation is None:
            return getattr(self._client, name)  # exceptions, get_paginator, get_waiter, ...

        def call(**params: Any) -> Any:
            self._validate(operation, params)
            self.calls.append(RecordedCall(operation, params))
            if not self._dry_run:
                return getattr(self._client, name)(**params)
            return self._dry_answer(operation, params)

        call.__name__ = name
        return call

    def _validate(self, operation: str, params: dict[str, Any]) -> None:
        from botocore.validate import ParamValidator

        shape = self._client.meta.service_model.operation_model(operation).input_shape
        report = ParamValidator().validate(params, shape)
        if report.has_errors():
            raise DogbreedError(f"{operation} request is invalid: {report.generate_report()}")

    def _dry_answer(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        if operation == "AddTags":  # a redeploy's new expiry on the endpoint it updates
            return {"Tags": params["Tags"]}
        if operation not in _DRY_ANSWERS:
            raise DryRunViolation(f"dry run: the SageMaker SDK tried to call {operation}, which would reach AWS")
        key, kind = _DRY_ANSWERS[operation]
        name = next(params[k] for k in _NAME_KEYS if k in params)
        region = self._client.meta.region_name
        return {key: f"arn:aws:sagemaker:{region}:{self._account_id}:{kind}/{name.lower()}"}

    def requests(self) -> dict[str, dict[str, Any]]:
        """{operation: params} of the calls so far (the last call of each operation)."""
        return {call.operation: call.params for call in self.calls}

    def last(self, operation: str) -> dict[str, Any]:
        for call in reversed(self.calls):
            if call.operation == operation:
                return call.params
        raise KeyError(f"no {operation} call was recorded")
