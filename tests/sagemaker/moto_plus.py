"""moto's server, with the piece of AWS behaviour its SageMaker tests need and moto lacks.

- Service Quotas: moto implements ListAWSDefaultServiceQuotas and GetServiceQuota but ships
  quota data for the `vpc` service only. SageMaker's are read, on every request, from the
  JSON file named by DOGBREED_QUOTAS_FILE, so a test sets the account's quotas by writing it:
      {"defaults": [Quota, ...], "applied": {"L-CODE": value}, "denied": false}
  `denied: true` answers AccessDeniedException, as AWS does for a caller without
  servicequotas:* permissions.
Every other call is moto's own.

Usage: python moto_plus.py -H 127.0.0.1 -p PORT
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from moto.core.exceptions import JsonRESTError
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

if __name__ == "__main__":
    main()
