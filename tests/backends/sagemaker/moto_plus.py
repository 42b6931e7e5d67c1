"""moto's server, with the two pieces of AWS behaviour its SageMaker tests need and moto lacks.

- Service Quotas: moto implements ListAWSDefaultServiceQuotas and GetServiceQuota but ships
  quota data for the `vpc` service only. SageMaker's are read, on every request, from the
  JSON file named by DOGBREED_QUOTAS_FILE, so a test sets the account's quotas by writing it:
      {"defaults": [Quota, ...], "applied": {"L-CODE": value}, "denied": false}
  `denied: true` answers AccessDeniedException, as AWS does for a caller without
  servicequotas:* permissions.
- SageMaker UpdateEndpoint, which moto does not implement, as AWS documents it: the endpoint
  must be InService and the config must exist (ValidationException otherwise); the new
  variants' model data is fetched (here: must exist in moto's S3). When it cannot be, the
  update fails and SageMaker rolls back: the endpoint keeps its old config, is InService
  again, and DescribeEndpoint's FailureReason says why ("the status is InService but update
  operation fails", DescribeEndpoint's API reference).
- SageMaker Batch Transform jobs that keep running: moto's complete at once, and it lacks
  StopTransformJob. With `"transform_status": "InProgress"` in the same JSON file, a new job
  stays InProgress until StopTransformJob, which makes it Stopped, as AWS does
  (Stopping, then Stopped; the end state is what a caller waits for).
Every other call is moto's own.

Usage: python moto_plus.py -H 127.0.0.1 -p PORT
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from moto.core.exceptions import JsonRESTError
from moto.core.responses import ActionResult
from moto.core.utils import utcnow
from moto.s3.models import s3_backends
from moto.sagemaker.exceptions import ValidationError
from moto.sagemaker.models import FakeTransformJob, SageMakerModelBackend
from moto.sagemaker.responses import SageMakerResponse
from moto.server import main
from moto.servicequotas.models import ServiceQuotasBackend

# --- Service Quotas -----------------------------------------------------------------------


class AccessDenied(JsonRESTError):
    def __init__(self) -> None:
        super().__init__("AccessDeniedException", "User is not authorized to perform: servicequotas:*")


def _seeded() -> dict[str, Any]:
    path = Path(os.environ.get("DOGBREED_QUOTAS_FILE", "/nonexistent"))
    seeded = json.loads(path.read_text()) if path.is_file() else {}
    if seeded.get("denied"):
        raise AccessDenied()
    return seeded


_list_defaults = ServiceQuotasBackend.list_aws_default_service_quotas
_get_quota = ServiceQuotasBackend.get_service_quota


def list_aws_default_service_quotas(self: ServiceQuotasBackend, service_code: str) -> list[dict[str, Any]]:
    if service_code == "sagemaker":
        return _seeded().get("defaults", [])
    return _list_defaults(self, service_code)


def get_service_quota(self: ServiceQuotasBackend, service_code: str, quota_code: str) -> dict[str, Any]:
    if service_code == "sagemaker":
        seeded = _seeded()
        for quota in seeded.get("defaults", []):
            if quota["QuotaCode"] == quota_code and quota_code in seeded.get("applied", {}):
                return {**quota, "Value": float(seeded["applied"][quota_code])}
    return _get_quota(self, service_code, quota_code)  # moto's NoSuchResourceException otherwise


ServiceQuotasBackend.list_aws_default_service_quotas = list_aws_default_service_quotas
ServiceQuotasBackend.get_service_quota = get_service_quota

# --- SageMaker UpdateEndpoint ---------------------------------------------------------------


def _model_data_missing(backend: SageMakerModelBackend, variants: list[dict[str, Any]]) -> str | None:
    for variant in variants:
        model = backend.describe_model(variant["ModelName"])
        url = (model.primary_container or {}).get("ModelDataUrl", "")
        if not url.startswith("s3://"):
            continue
        bucket, _, key = url[len("s3://") :].partition("/")
        try:
            found = s3_backends[backend.account_id]["aws"].get_object(bucket, key)
        except Exception:  # noqa: BLE001 - moto's MissingBucket and friends
            found = None
        if found is None:
            return f"Failed to download model data for container in variant {variant['VariantName']}: {url} not found."
    return None


def update_endpoint(self: SageMakerModelBackend, endpoint_name: str, endpoint_config_name: str) -> Any:
    endpoint = self.endpoints.get(endpoint_name)
    if endpoint is None:
        raise ValidationError(message=f"Could not find endpoint '{endpoint_name}'.")
    if endpoint.endpoint_status != "InService":
        raise ValidationError(message=f"Cannot update in-progress endpoint '{endpoint.arn}'.")
    config = self.describe_endpoint_config(endpoint_config_name)  # ValidationError when missing
    failure = _model_data_missing(self, config["ProductionVariants"])
    endpoint.last_modified_time = utcnow()
    if failure:
        endpoint.failure_reason = failure  # rolled back: the old config still serves
        return endpoint
    endpoint.endpoint_config_name = endpoint_config_name
    endpoint.production_variants = endpoint._process_production_variants(config["ProductionVariants"])
    endpoint.failure_reason = None
    return endpoint


def update_endpoint_response(self: SageMakerResponse) -> ActionResult:
    endpoint = self.sagemaker_backend.update_endpoint(
        endpoint_name=self._get_param("EndpointName"),
        endpoint_config_name=self._get_param("EndpointConfigName"),
    )
    return ActionResult({"EndpointArn": endpoint.arn})


SageMakerModelBackend.update_endpoint = update_endpoint
SageMakerResponse.update_endpoint = update_endpoint_response

# --- SageMaker Batch Transform that runs until stopped ---------------------------------------

_transform_init = FakeTransformJob.__init__


def transform_init(self: FakeTransformJob, *args: Any, **kwargs: Any) -> None:
    _transform_init(self, *args, **kwargs)
    status = _seeded().get("transform_status")
    if status:
        self.transform_job_status = status
        self.transform_end_time = None


def stop_transform_job(self: SageMakerModelBackend, transform_job_name: str) -> None:
    job = self.transform_jobs.get(transform_job_name)
    if job is None:
        raise ValidationError(message=f"Could not find transform job '{transform_job_name}'.")
    if job.transform_job_status != "InProgress":
        raise ValidationError(message=f"Transform job '{transform_job_name}' is {job.transform_job_status}, not InProgress.")
    job.transform_job_status = "Stopped"
    job.transform_end_time = utcnow()


def stop_transform_job_response(self: SageMakerResponse) -> ActionResult:
    self.sagemaker_backend.stop_transform_job(transform_job_name=self._get_param("TransformJobName"))
    return ActionResult({})


FakeTransformJob.__init__ = transform_init
SageMakerModelBackend.stop_transform_job = stop_transform_job
SageMakerResponse.stop_transform_job = stop_transform_job_response

if __name__ == "__main__":
    main()
