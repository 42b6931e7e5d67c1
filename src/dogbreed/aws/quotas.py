"""SageMaker instance quotas (Service Quotas API), compared with what a command needs.

A new account often has 0 `ml.g4dn.xlarge for training job usage` (or fewer than
tune.max_parallel_jobs): the job is accepted, then fails minutes later with
ResourceLimitExceeded. The pre-flight asks first.

SageMaker's quota codes (L-xxxxxxxx) are not documented per instance type, so the quotas are
found by name in the service's list of defaults (ListAWSDefaultServiceQuotas), then the
account's own value is read by code (GetServiceQuota); a quota the account never changed has
no applied value (NoSuchResourceException) and the default holds.
A caller who may not read quotas gets a warning and the check is skipped: quotas are a hint,
never a reason to stop someone whose IAM policy leaves out servicequotas:*.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dogbreed.aws.client_errors import code_of
from dogbreed.config import Config

SERVICE_CODE = "sagemaker"
_DENIED = ("AccessDeniedException", "AccessDenied", "UnauthorizedOperation")


@dataclass(frozen=True)
class QuotaNeed:
    name: str  # the quota's name as Service Quotas spells it: 'ml.g4dn.xlarge for training job usage'
    needed: int  # instances the command runs at once
    why: str  # what needs them, for the message


@dataclass
class QuotaCheck:
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def training_needs(config: Config, instance_use: str) -> list[QuotaNeed]:
    """A training job (instance_use 'train') or a tuning job's parallel trials ('tune')."""
    sm = config.sagemaker
    instance_type = getattr(sm.instance_type, instance_use)
    usage = "spot training job usage" if sm.spot else "training job usage"
    if instance_use == "tune":
        parallel = config.tune.max_parallel_jobs
        why = f"tune.max_parallel_jobs={parallel} x sagemaker.instance_count={sm.instance_count}"
        return [QuotaNeed(f"{instance_type} for {usage}", parallel * sm.instance_count, why)]
    return [QuotaNeed(f"{instance_type} for {usage}", sm.instance_count, f"sagemaker.instance_count={sm.instance_count}")]


def endpoint_needs(config: Config) -> list[QuotaNeed]:
    """Real-time endpoints only: serverless ones have a concurrency quota of their own."""
    sm = config.sagemaker
    if config.deploy.serverless:
        return []
    count = sm.endpoint_instance_count
    return [QuotaNeed(f"{sm.instance_type.endpoint} for endpoint usage", count, f"sagemaker.endpoint_instance_count={count}")]


def request_command(quota: dict[str, Any], needed: int, region: str) -> str:
    return (
        f"aws service-quotas request-service-quota-increase --region {region} "
        f"--service-code {SERVICE_CODE} --quota-code {quota['QuotaCode']} --desired-value {needed}"
    )


def _defaults_by_name(client: Any) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    token: str | None = None
    while True:
        page = client.list_aws_default_service_quotas(ServiceCode=SERVICE_CODE, **({"NextToken": token} if token else {}))
        for quota in page.get("Quotas", []):
            found[quota["QuotaName"]] = quota
        token = page.get("NextToken")
        if not token:
            return found


def _applied(client: Any, default: dict[str, Any]) -> dict[str, Any]:
    from botocore.exceptions import ClientError

    try:
        return client.get_service_quota(ServiceCode=SERVICE_CODE, QuotaCode=default["QuotaCode"])["Quota"]
    except ClientError as exc:
        if code_of(exc) == "NoSuchResourceException":
            return default  # never raised for this account: the default applies
        raise


def check_quotas(client: Any, needs: list[QuotaNeed], region: str) -> QuotaCheck:
    """One problem per quota below what is needed, with the console page and the CLI command
    that asks for more; warnings when the quotas cannot be read."""
    from botocore.exceptions import BotoCoreError, ClientError

    result = QuotaCheck()
    if not needs:
        return result
    console = f"https://{region}.console.aws.amazon.com/servicequotas/home/services/sagemaker/quotas"
    try:
        defaults = _defaults_by_name(client)
        for need in needs:
            default = defaults.get(need.name)
            if default is None:
                result.warnings.append(f"no Service Quota named {need.name!r} in {region}; not checked")
                continue
            quota = _applied(client, default)
            value = int(quota.get("Value", 0))
            if value < need.needed:
                result.problems.append(
                    f"quota {need.name!r} is {value} in {region} but {need.needed} are needed ({need.why}); "
                    f"ask for more at {console}/{quota['QuotaCode']} or: {request_command(quota, need.needed, region)}"
                )
    except ClientError as exc:
        code = code_of(exc)
        if code in _DENIED:
            names = ", ".join(need.name for need in needs)
            result.warnings.append(
                f"cannot read SageMaker quotas ({code}); not checked: {names} "
                "(allow servicequotas:ListAWSDefaultServiceQuotas and servicequotas:GetServiceQuota to check them)"
            )
        elif code == "NoSuchResourceException":
            result.warnings.append(f"Service Quotas lists no SageMaker quotas in {region}; quotas not checked")
        else:
            result.warnings.append(f"Service Quotas said {code or exc}; quotas not checked")
    except BotoCoreError as exc:
        result.warnings.append(f"cannot reach Service Quotas ({exc}); quotas not checked")
    return result
