"""One gateway to AWS: a boto3 session built from the config and the standard environment.

boto3 honours AWS_ENDPOINT_URL (and AWS_ENDPOINT_URL_<SERVICE>) itself, which is how tests
point everything at a moto server on 127.0.0.1. Callers receive an AwsSession; they never
build clients of their own, so a test can hand them one aimed at moto.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

from dogbreed.config.schema import SageMakerConfig
from dogbreed.errors import DogbreedError


@dataclass
class AwsSession:
    config: SageMakerConfig

    @cached_property
    def boto(self) -> Any:
        import boto3

        try:
            return boto3.Session(profile_name=self.config.profile, region_name=self.config.region)
        except Exception as exc:  # botocore.exceptions.ProfileNotFound and friends
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

    @cached_property
    def sagemaker(self) -> Any:
        """The SageMaker SDK v2 session, built on the same boto3 session."""
        import os

        os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
        import sagemaker

        return sagemaker.Session(
            boto_session=self.boto,
            sagemaker_client=self.client("sagemaker"),
            sagemaker_runtime_client=self.client("sagemaker-runtime"),
            default_bucket=self.config.bucket,
        )
