"""The SageMaker Runtime API's side of InvokeEndpoint, as botocore expects to read it.

`POST /endpoints/{EndpointName}/invocations` (botocore's sagemaker-runtime service model,
protocol rest-json). A rest-json error is a JSON body with "Message" plus the error code in
the `x-amzn-ErrorType` header; botocore then raises the modeled exception (ModelError,
ValidationError, ...) and parses the modeled fields (OriginalStatusCode, OriginalMessage)
from the body. The messages copy the real service's wording, so code that matches on them
behaves the same against the local endpoint.
"""

from __future__ import annotations

import json
import re
import uuid
from urllib.parse import unquote

from dogbreed.serving.limits import MAX_PAYLOAD_BYTES
from dogbreed.serving.model_handler import Reply

ROUTE = re.compile(r"^/endpoints/(?P<name>[^/?]+)/invocations(?:\?.*)?$")
LOCAL_ACCOUNT = "000000000000"  # no AWS account behind a local endpoint
VARIANT = "AllTraffic"  # what the SageMaker SDK names the only production variant


def endpoint_in_path(path: str) -> str | None:
    """The endpoint name of a Runtime API path, else None."""
    match = ROUTE.match(path)
    return unquote(match.group("name")) if match else None


def _headers(error_type: str | None = None) -> dict[str, str]:
    headers = {"x-amzn-RequestId": str(uuid.uuid4())}
    if error_type:
        headers["x-amzn-ErrorType"] = error_type
    return headers


def _error(status: int, error_type: str | None, message: str, **fields: object) -> Reply:
    body = json.dumps({"Message": message, **fields}).encode()
    return Reply(status, body, "application/json", _headers(error_type))


def success_headers() -> dict[str, str]:
    return {**_headers(), "x-Amzn-Invoked-Production-Variant": VARIANT}


def endpoint_not_found(name: str) -> Reply:
    return _error(400, "ValidationError", f"Endpoint {name} of account {LOCAL_ACCOUNT} not found.")


def model_not_ready(name: str) -> Reply:
    return _error(429, "ModelNotReadyException", f"Model for endpoint {name} is still loading. Try again shortly.")


def payload_too_large() -> Reply:
    # The service answers this one with a bare status (botocore reports code "413").
    return _error(413, None, f"HTTP content length exceeded {MAX_PAYLOAD_BYTES} bytes.")


def model_error(name: str, reply: Reply, log_file: str | None = None) -> Reply:
    """A non-200 answer of the model wrapped the way SageMaker wraps it (HTTP 424)."""
    text = reply.body.decode("utf-8", errors="replace")
    side = "client" if reply.status < 500 else "server"
    where = f"See {log_file} for more information." if log_file else "See the endpoint's log for more information."
    return _error(
        424,
        "ModelError",
        f'Received {side} error ({reply.status}) from primary with message "{text}". {where}',
        OriginalStatusCode=reply.status,
        OriginalMessage=text,
        LogStreamArn=f"arn:aws:logs:local:{LOCAL_ACCOUNT}:log-group:/aws/sagemaker/Endpoints/{name}",
    )
