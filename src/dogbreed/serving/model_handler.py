"""Runs a model's own code/inference.py the way the SageMaker PyTorch inference toolkit does.

The container puts <model_dir>/code on the path, imports the module named by SAGEMAKER_PROGRAM
(inference.py), calls model_fn(model_dir) once, then per request input_fn -> predict_fn ->
output_fn, with the body decoded to str for the UTF-8 content types and a missing or `*/*`
Accept replaced by the default (sagemaker_inference/transformer.py). Doing the same here is
what makes a local rehearsal mean something. Errors that carry an HTTP `status_code`
(inference.py's RequestError family) become that status with a JSON body; anything else
is a 500, logged with its traceback.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from dogbreed.serving.limits import MAX_PAYLOAD_BYTES

log = logging.getLogger("dogbreed.serving")

# sagemaker_inference.content_types.UTF8_TYPES: bodies the toolkit hands over as str.
UTF8_TYPES = ("application/json", "text/csv")
HOOKS = ("model_fn", "input_fn", "predict_fn", "output_fn")


def default_accept() -> str:
    return os.environ.get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT", "application/json")


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def error(cls, status: int, error: str, detail: str, headers: dict[str, str] | None = None) -> Reply:
        body = json.dumps({"error": error, "detail": detail}).encode()
        return cls(status, body, "application/json", headers or {})


def _as_bytes(body: Any) -> bytes:
    if isinstance(body, str):
        return body.encode("utf-8")
    return bytes(body)


class ModelHandler:
    """A loaded model and the four hooks of the module that loaded it."""

    def __init__(self, module: ModuleType, model: Any) -> None:
        self.module = module
        self.model = model

    @classmethod
    def load(cls, model_dir: Path, program: str = "inference.py") -> ModelHandler:
        code_dir = Path(model_dir) / "code"
        if not (code_dir / program).is_file():
            raise FileNotFoundError(
                f"{code_dir / program} not found: a model dir written by train.py carries its handler in code/"
            )
        sys.path.insert(0, str(code_dir))
        # No byte-code written into the model's code/: deploying the same model dir again must
        # find it as it was (serving/handler_code.py counts byte-code there as foreign).
        sys.dont_write_bytecode = True
        module = importlib.import_module(Path(program).stem)
        missing = [hook for hook in HOOKS if not callable(getattr(module, hook, None))]
        if missing:
            raise AttributeError(f"{code_dir / program} lacks {', '.join(missing)}")
        return cls(module, module.model_fn(str(model_dir)))

    def invoke(self, body: bytes, content_type: str | None, accept: str | None) -> Reply:
        """One invocation, never raising: errors become 4xx/5xx replies."""
        try:
            data: bytes | str = body
            if content_type in UTF8_TYPES:
                data = body.decode("utf-8")
            if not accept or accept == "*/*":
                accept = default_accept()
            request = self.module.input_fn(data, content_type)
            prediction = self.module.predict_fn(request, self.model)
            result = self.module.output_fn(prediction, accept)
        except UnicodeDecodeError as exc:
            return Reply.error(400, "bad_request", f"the {content_type} body is not UTF-8 ({exc})")
        except RecursionError:
            # Any handler (ours, an older one, a trusted custom one) that recursed over a
            # request nested too deeply: the request's fault, a 400, and the server serves on.
            return Reply.error(400, "bad_request", "the request body nests too deeply")
        except Exception as exc:  # noqa: BLE001 - the handler's errors are the client's answer
            status = getattr(exc, "status_code", None)
            if isinstance(status, int) and 400 <= status < 600:
                return Reply.error(status, str(getattr(exc, "error", "error")), str(getattr(exc, "detail", exc)))
            log.exception("invocation failed")
            return Reply.error(500, "model_error", f"{type(exc).__name__}: {exc}")
        payload, reply_type = result if isinstance(result, tuple) else (result, accept)
        payload = _as_bytes(payload)
        if len(payload) > MAX_PAYLOAD_BYTES:
            return Reply.error(500, "response_too_large", f"the answer is {len(payload):,} bytes, over {MAX_PAYLOAD_BYTES:,}")
        return Reply(200, payload, reply_type)
