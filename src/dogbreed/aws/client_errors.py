"""Reading botocore's ClientError the same way everywhere: its code, its message, and whether
it means "that resource does not exist" (SageMaker says so with a ValidationException)."""

from __future__ import annotations

_MISSING_WORDS = ("not found", "could not find", "does not exist")


def code_of(exc: BaseException) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


def message_of(exc: BaseException) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Message", exc))


def is_missing(exc: BaseException) -> bool:
    """DescribeTrainingJob: 'Requested resource not found.'; DeleteModel: 'Could not find model ...'."""
    lowered = message_of(exc).lower()
    return code_of(exc) in ("ValidationException", "ResourceNotFound") and any(w in lowered for w in _MISSING_WORDS)
