"""Tags on everything dogbreed creates on SageMaker, so `status` and `teardown` can find it
from AWS alone, even when the local ledger was lost.

- dogbreed:project  sagemaker.prefix: one account can hold several projects apart
- dogbreed:run      the training job, tuning job or endpoint the resource belongs to
- dogbreed:kind     training-job | tuning-job | endpoint (a model and its endpoint config
                    carry their endpoint's tags: the SDK tags all three from one list)
- dogbreed:expires-at  ISO time an endpoint's TTL ends (deploy.ttl)
Plus sagemaker.tags, the user's own.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from dogbreed.config.schema import SageMakerConfig

PROJECT = "dogbreed:project"
RUN = "dogbreed:run"
KIND = "dogbreed:kind"
EXPIRES_AT = "dogbreed:expires-at"


def resource_tags(config: SageMakerConfig, *, run: str, kind: str, expires_at: datetime | None = None) -> list[dict[str, str]]:
    """The Tags list of a Create* request, ours first, then the user's (sorted)."""
    tags = {PROJECT: config.prefix, RUN: run, KIND: kind}
    if expires_at is not None:
        tags[EXPIRES_AT] = expires_at.isoformat()
    for key, value in sorted(config.tags.items()):
        tags.setdefault(key, value)
    return [{"Key": key, "Value": value} for key, value in tags.items()]


def as_dict(tags: Iterable[Mapping[str, str]]) -> dict[str, str]:
    return {tag["Key"]: tag["Value"] for tag in tags}


def is_ours(tags: Mapping[str, str], config: SageMakerConfig) -> bool:
    return tags.get(PROJECT) == config.prefix
