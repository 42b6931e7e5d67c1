"""Checks that run before anything billable (sagemaker.preflight, on by default).

A failed SageMaker job costs minutes of instance start-up before it says what was wrong;
these checks say it in seconds, one clear line per problem:
- region, instance type names and the framework image, from the SDK's and botocore's own
  tables (no call);
- the role's account is the caller's (STS), the bucket exists, is reachable and in the
  region (HeadBucket), the dataset's manifest.json can be read;
- what a rehearsal needs (backends/sagemaker_preflight.py runs train.py on one batch per
  split locally with the very flags the job will get): a few files of the dataset, the
  weights, and which metric regexes matched nothing the run printed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from dogbreed.aws.client_errors import code_of
from dogbreed.aws.session import AwsSession, import_sdk
from dogbreed.config import Config
from dogbreed.errors import DogbreedError
from dogbreed.jobspec import metric_spec
from dogbreed.progress import NullReporter, Reporter
from dogbreed.s3_uri import split_s3_uri
from dogbreed.workspace import Workspace

MANIFEST = "manifest.json"
SKIP_HINT = "skip the checks with --set sagemaker.preflight=false"
# botocore's enums of instance types each API accepts.
_INSTANCE_ENUMS = {
    "train": "TrainingInstanceType",
    "tune": "TrainingInstanceType",
    "endpoint": "ProductionVariantInstanceType",
    "transform": "TransformInstanceType",
}
_INSTANCE_KEYS = {"transform": "transform.instance_type"}  # the others: sagemaker.instance_type.<use>


class MissingManifest(DogbreedError):
    """The dataset prefix has photos, maybe, but no manifest.json."""


class PreflightError(DogbreedError):
    """One or more pre-flight problems; the message has one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        head = f"pre-flight found {len(problems)} problem(s); fix them or {SKIP_HINT}:"
        super().__init__("\n".join([head, *(f"  - {p}" for p in problems)]))


def check_region(aws: AwsSession) -> list[str]:
    region = aws.region
    known = aws.boto.get_available_regions("sagemaker")
    if known and region not in known:
        return [f"region {region!r} has no SageMaker; pick one of {', '.join(sorted(known)[:6])}, ... (sagemaker.region)"]
    return []


def check_instance_types(aws: AwsSession, uses: dict[str, str]) -> list[str]:
    """uses: {'train': 'ml.g4dn.xlarge', ...}; names checked against the API's enums."""
    model = aws.client("sagemaker").meta.service_model  # botocore's bundled model: no call
    problems = []
    for use, name in uses.items():
        if name == "serverless":
            continue
        allowed = model.shape_for(_INSTANCE_ENUMS[use]).enum
        if name not in allowed:
            family = name.split(".")[1] if name.count(".") == 2 else None
            close = [a for a in allowed if a.split(".")[1] == family][:4]
            hint = f" (e.g. {', '.join(close)})" if close else ""
            key = _INSTANCE_KEYS.get(use, f"sagemaker.instance_type.{use}")
            problems.append(f"{key}: {name!r} is not a SageMaker instance type{hint}")
    return problems


def check_image(config: Config, aws: AwsSession, scope: str, instance_type: str) -> list[str]:
    """The PyTorch container exists for this version, Python, processor and region."""
    import_sdk()
    from sagemaker import image_uris
    from sagemaker.serverless import ServerlessInferenceConfig

    sm = config.sagemaker
    version = sm.framework_version if scope == "training" else sm.inference_framework_version
    serverless = instance_type == "serverless"
    try:
        image_uris.retrieve(
            "pytorch",
            aws.region,
            version=version,
            py_version=sm.py_version,
            instance_type=None if serverless else instance_type,
            image_scope=scope,
            serverless_inference_config=ServerlessInferenceConfig() if serverless else None,
        )
    except ValueError as exc:
        reason = " ".join(str(exc).split())
        return [f"no PyTorch {version} {sm.py_version} {scope} image for {instance_type} in {aws.region}: {reason}"]
    return []


def check_debugger(config: Config) -> list[str]:
    """sagemaker.debugger=true where it would record nothing, or with spot on several instances."""
    from dogbreed.aws.debugger import debugger_refusal

    refused = debugger_refusal(config.sagemaker)
    return [refused] if refused else []


def check_role(aws: AwsSession) -> list[str]:
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    if not aws.config.role:
        return ["sagemaker.role is not set: give the full ARN of the IAM role SageMaker assumes"]
    try:
        caller = aws.client("sts").get_caller_identity()["Account"]
    except NoCredentialsError:
        return ["no AWS credentials: set sagemaker.profile or the AWS_* environment variables"]
    except (BotoCoreError, ClientError) as exc:
        return [f"cannot ask STS who you are ({code_of(exc) or exc}); check the credentials"]
    if caller != aws.account_id:
        return [f"sagemaker.role is in account {aws.account_id} but your credentials are for {caller}"]
    return []


def check_scheduler_role(aws: AwsSession, config: Config) -> list[str]:
    """The role EventBridge Scheduler assumes to delete the endpoint at its TTL is in this
    account (a role elsewhere needs a cross-account trust we cannot see)."""
    role = config.sagemaker.scheduler_role
    if not role:
        return []
    account = role.split(":")[4]
    if config.sagemaker.role and account != aws.account_id:
        return [
            f"sagemaker.scheduler_role is in account {account} but sagemaker.role in {aws.account_id}; use a role of {aws.account_id}"
        ]
    return []


def check_bucket(aws: AwsSession) -> list[str]:
    from botocore.exceptions import BotoCoreError, ClientError

    bucket = aws.bucket
    try:
        head = aws.client("s3").head_bucket(Bucket=bucket)
    except ClientError as exc:
        code = code_of(exc)
        if code in ("404", "NoSuchBucket", "NotFound"):
            if not aws.config.bucket:
                return []  # the SDK's default bucket: created on first use, as the SDK does
            return [f"bucket {bucket!r} does not exist: create it (aws s3 mb s3://{bucket}) or set sagemaker.bucket"]
        if code in ("403", "AccessDenied", "Forbidden"):
            return [f"no access to bucket {bucket!r}: check the bucket policy and your credentials"]
        return [f"bucket {bucket!r}: S3 said {code or exc}"]
    except BotoCoreError as exc:
        return [f"bucket {bucket!r}: cannot reach S3 ({exc})"]
    where = head.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("x-amz-bucket-region")
    if where and where != aws.region:
        return [f"bucket {bucket!r} is in {where} but SageMaker runs in {aws.region}; use a bucket in {aws.region}"]
    return []


def read_manifest(aws: AwsSession, dataset_uri: str) -> dict[str, Any]:
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, prefix = split_s3_uri(dataset_uri.rstrip("/"))
    key = f"{prefix}/{MANIFEST}" if prefix else MANIFEST
    try:
        return json.loads(aws.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())
    except ClientError as exc:
        code = code_of(exc)
        if code in ("NoSuchKey", "404"):
            raise MissingManifest(
                f"{dataset_uri}: no {MANIFEST}; if the photos are already there, `dogbreed ingest {dataset_uri}` checks "
                "them and writes one in place (nothing is uploaded), else ingest the dataset there first"
            ) from None
        raise DogbreedError(f"{dataset_uri}/{MANIFEST}: S3 said {code or exc}") from None
    except (BotoCoreError, ValueError) as exc:
        raise DogbreedError(f"{dataset_uri}/{MANIFEST}: cannot read it ({exc})") from None


def rehearsal_dataset(aws: AwsSession, dataset_uri: str, manifest: dict[str, Any], per_split: int, dest: Path) -> Path:
    """A local copy of the first `per_split` files of each split, with a manifest of its own."""
    bucket, prefix = split_s3_uri(dataset_uri.rstrip("/"))
    chosen: list[dict[str, Any]] = []
    for split in ("train", "valid", "test"):
        chosen += [f for f in manifest.get("files", []) if f.get("split") == split][:per_split]
    s3 = aws.client("s3")
    for entry in chosen:
        target = dest / entry["path"]
        if target.is_file() and target.stat().st_size == entry.get("size"):
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        s3.download_file(bucket, f"{prefix}/{entry['path']}" if prefix else entry["path"], str(target))
    subset = {key: value for key, value in manifest.items() if key != "manifest_sha256"}
    subset["files"] = chosen
    (dest / MANIFEST).write_text(json.dumps(subset, indent=1))
    return dest


def unmatched_metrics(log_text: str) -> list[str]:
    """Names of the job's metric definitions whose regex matches no line of `log_text`."""
    import re

    return [d["Name"] for d in metric_spec().metric_definitions() if not re.search(d["Regex"], log_text, flags=re.MULTILINE)]


def local_weights(aws: AwsSession, workspace: Workspace, weights: str) -> Path:
    """A weights file on this machine: the path as given, or an s3:// one downloaded once."""
    if not weights.startswith("s3://"):
        return Path(weights).expanduser().resolve()
    bucket, key = split_s3_uri(weights)
    target = workspace.cache("weights") / bucket / key
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        aws.client("s3").download_file(bucket, key, str(target))
    return target


def raise_if(problems: Iterable[str], reporter: Reporter | None = None, what: str = "") -> None:
    found = list(problems)
    if found:
        raise PreflightError(found)
    (reporter or NullReporter()).info(f"pre-flight passed{f' ({what})' if what else ''}")
