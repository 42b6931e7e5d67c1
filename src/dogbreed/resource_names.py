"""Resource names that are unique, sortable and valid everywhere SageMaker takes a name.

SageMaker names allow [a-zA-Z0-9-], at most 63 characters (32 for tuning jobs). Always
naming jobs ourselves also avoids the SDK's auto-names, which collide within a minute.
"""

from __future__ import annotations

import re
import secrets
from datetime import datetime, timezone

from dogbreed.errors import UsageError

# SageMaker's own pattern for job, model and endpoint names: repeated hyphens are allowed.
_VALID = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9])*$")
MAX_LEN = {"tuning-job": 32}


def unique_name(kind: str, prefix: str = "dogbreed", when: datetime | None = None) -> str:
    """'dogbreed-train-261127-215500-a1b2' for kind 'train'."""
    when = when or datetime.now(timezone.utc)
    name = f"{prefix}-{kind}-{when:%y%m%d-%H%M%S}-{secrets.token_hex(2)}"
    check_name(name, 32 if kind == "tune" else 63)
    return name


class InvalidNameError(UsageError, ValueError):
    """A name the user gave (--name, an endpoint) that no backend takes: exit 2. Also a
    ValueError, so pydantic validators and older callers that catch ValueError still do."""


def check_name(name: str, max_len: int = 63, what: str = "name") -> str:
    """The name itself, or InvalidNameError. Names become folders and S3 keys, so this is
    also what keeps '..' and '/' out of paths."""
    if len(name) > max_len or not _VALID.match(name):
        shown = repr(name) if len(name) <= 80 else f"{name[:40]!r}... ({len(name)} characters)"
        raise InvalidNameError(
            f"{what}: invalid name {shown}: use letters, digits and hyphens (not first or last), at most {max_len} characters"
        )
    return name
