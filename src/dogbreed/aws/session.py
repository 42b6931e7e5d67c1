"""One gateway to AWS: a boto3 session built from the config and the standard environment.

boto3 honours AWS_ENDPOINT_URL (and AWS_ENDPOINT_URL_<SERVICE>) itself, which is how tests
point everything at a moto server on 127.0.0.1. Callers receive an AwsSession; they never
build clients of their own, so a test can hand them one aimed at moto.

An `offline` session is what dry runs use: it builds the same SDK objects but its boto3
session never looks for credentials on the network (instance metadata, container role), and
the SageMaker SDK session it makes never sends anything (see aws/requests.py).
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Any

from dogbreed.config.schema import SageMakerConfig
from dogbreed.errors import ConfigError, DogbreedError

_ROLE_ACCOUNT = re.compile(r"^arn:aws[a-z-]*:iam::(\d{12}):role/")
MISSING_ROLE = (
    "sagemaker.role is not set: give the full ARN of the IAM role SageMaker jobs assume, "
    "e.g. --set sagemaker.role=arn:aws:iam::123456789012:role/SageMakerRole"
)

# The SDK's own defaults file (~/.config/sagemaker/config.yaml, or one on S3) can add VPCs,
# KMS keys and tags to every request; dogbreed's YAML is the one config, so dry runs show
# exactly what is sent. It also opts out of the SDK's usage telemetry, which otherwise sends
# a GET to an S3 bucket on every fit/deploy: a network call a dry run must not make
# (sagemaker/telemetry/telemetry_logging.py, TelemetryOptOut).
SDK_CONFIG = {
    "SchemaVersion": "1.0",
    "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": True}}},
}


def import_sdk() -> Any:
    """`import sagemaker`, minus what the import does to logging and stdout.

    - sagemaker/config/config_utils.py gives the 'sagemaker.config' logger a handler on
      sys.stdout unless the 'sagemaker' logger has one: stdout is reserved for --json;
    - sagemaker/experiments/_metrics.py calls logging.basicConfig(level=INFO) when imported
      (lazily, during fit), which would put every library's INFO lines on stderr.
    dogbreed reports progress itself, and SDK failures come back as exceptions."""
    os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
    sdk_logger = logging.getLogger("sagemaker")
    if not sdk_logger.handlers:
        sdk_logger.addHandler(logging.NullHandler())
    for name in ("sagemaker", "sagemaker.config"):
        if logging.getLogger(name).level == logging.NOTSET:
            logging.getLogger(name).setLevel(logging.ERROR)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    import sagemaker
    import sagemaker.experiments._metrics  # noqa: F401 - its basicConfig runs now, and is undone below

    root.handlers[:] = handlers
    root.setLevel(level)
    _validate_sdk_config_once(sagemaker)
    return sagemaker


def _validate_sdk_config_once(sagemaker: Any) -> None:
    """Every SDK config lookup re-validates the whole config against its JSON schema
    (jsonschema.validate, meta-schema check included: about 0.4 s) - 44 lookups for one
    training request, because SDK_CONFIG is not empty (sagemaker/utils.py,
    get_sagemaker_config_value). The config never changes, so validate each one once."""
    import sagemaker.utils as sdk_utils

    validate = sdk_utils.validate_sagemaker_config
    if getattr(validate, "_dogbreed_once", False):
        return
    seen: set[str] = set()

    def validate_once(config: Any = None) -> None:
        key = json.dumps(config, sort_keys=True, default=str)
        if key not in seen:
            validate(config)
            seen.add(key)

    validate_once._dogbreed_once = True  # type: ignore[attr-defined]
    sdk_utils.validate_sagemaker_config = validate_once


@lru_cache(maxsize=1)
def _shared_loader() -> Any:
    """One botocore data loader for every session this process makes: each new session
    would otherwise parse the service models again (SageMaker's is megabytes of JSON)."""
    import botocore.loaders

    return botocore.loaders.create_loader()


@dataclass
class AwsSession:
    config: SageMakerConfig
    offline: bool = False

    @cached_property
    def boto(self) -> Any:
        import boto3
        import botocore.session

        try:
            core = botocore.session.Session(profile=self.config.profile)
            core.register_component("data_loader", _shared_loader())
            if self.offline:
                # Without credentials in the environment or files, botocore would ask the
                # instance metadata service and the container endpoint: network calls.
                resolver = core.get_component("credential_provider")
                for provider in ("container-role", "iam-role"):
                    resolver.remove(provider)
            return boto3.Session(botocore_session=core, region_name=self.config.region)
        except Exception as exc:  # noqa: BLE001 - botocore.exceptions.ProfileNotFound and friends
            raise DogbreedError(
                f"AWS session: {exc}; set sagemaker.profile / sagemaker.region or the AWS_* environment"
            ) from None

    @property
    def region(self) -> str:
        region = self.boto.region_name
        if not region:
            raise DogbreedError("AWS region unknown: set sagemaker.region or AWS_DEFAULT_REGION")
        return region

    def client(self, service: str, **kwargs: Any) -> Any:
        from botocore.config import Config as BotoConfig

        retries = BotoConfig(retries={"max_attempts": 8, "mode": "adaptive"}, max_pool_connections=32)
        return self.boto.client(service, region_name=self.region, config=retries, **kwargs)

    @property
    def role(self) -> str:
        if not self.config.role:
            raise ConfigError(MISSING_ROLE)
        return self.config.role

    @cached_property
    def account_id(self) -> str:
        """The account, from the role ARN when there is one (no call), else from STS."""
        match = _ROLE_ACCOUNT.match(self.config.role or "")
        if match:
            return match.group(1)
        if self.offline:
            raise ConfigError(MISSING_ROLE)  # a dry run takes the account from the role ARN
        return self.client("sts").get_caller_identity()["Account"]

    @cached_property
    def bucket(self) -> str:
        """sagemaker.bucket, else the SDK's default bucket name (sagemaker-<region>-<account>).

        Only the name: whether it exists is the pre-flight's question (HeadBucket)."""
        return self.config.bucket or f"sagemaker-{self.region}-{self.account_id}"

    def s3_uri(self, *parts: str) -> str:
        """s3://<bucket>/<prefix>/<parts...>"""
        keys = [p.strip("/") for p in (self.config.prefix, *parts) if p and p.strip("/")]
        return "s3://" + "/".join([self.bucket, *keys])

    def sagemaker_session(self, sagemaker_client: Any = None) -> Any:
        """A SageMaker SDK v2 session on this boto3 session, sending through `sagemaker_client`
        (a RecordingClient from aws/requests.py, or a real client when None)."""
        sagemaker = import_sdk()
        client = sagemaker_client if sagemaker_client is not None else self.client("sagemaker")
        return sagemaker.Session(
            boto_session=self.boto,
            sagemaker_client=client,
            sagemaker_runtime_client=self.client("sagemaker-runtime"),
            default_bucket=self.config.bucket,
            sagemaker_config=SDK_CONFIG,
        )

    @cached_property
    def sagemaker(self) -> Any:
        """The SageMaker SDK v2 session, built on the same boto3 session."""
        return self.sagemaker_session()
