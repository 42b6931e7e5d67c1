"""inference.py through the real sagemaker-pytorch-inference toolkit, in-process.

TorchServe hands the toolkit's HandlerService a context (system_properties, per-request
headers via request_processor, response status and content type setters); the stand-in
below has exactly the attributes the toolkit reads (sagemaker_inference/transformer.py).
The answer must equal our server's for the same request, and bad input must come back with
our 4xx status rather than the toolkit's default 500.
"""

from __future__ import annotations

import json
import sys

import pytest

from tests.serving.images import BEAGLE
from tests.serving.test_server_http import post


class RequestProcessor:
    def __init__(self, headers: dict[str, str]) -> None:
        self.headers = headers

    def get_request_properties(self) -> dict[str, str]:
        return self.headers


class Context:
    """What TorchServe's ts.context.Context offers the handler, reduced to what it uses."""

    model_name = "model"

    def __init__(self, model_dir: str, headers: dict[str, str]) -> None:
        self.system_properties = {"model_dir": model_dir, "gpu_id": None}
        self.request_processor = [RequestProcessor(headers)]
        self.status: tuple[int, str] | None = None
        self.content_types: dict[int, str] = {}

    def set_response_status(self, code: int, phrase: str) -> None:
        self.status = (code, phrase)

    def set_response_content_type(self, index: int, value: str) -> None:
        self.content_types[index] = value


@pytest.fixture
def toolkit(model_dir, monkeypatch):
    """The toolkit's HandlerService, initialised the way the container does it."""
    from sagemaker_pytorch_serving_container.handler_service import HandlerService

    monkeypatch.setenv("SAGEMAKER_PROGRAM", "inference.py")
    monkeypatch.syspath_prepend(str(model_dir / "code"))  # the container's PYTHONPATH
    sys.modules.pop("inference", None)
    service = HandlerService()
    service.initialize(Context(str(model_dir), {}))
    yield service
    sys.modules.pop("inference", None)


def assert_same_answer(theirs: bytes | str, ours: bytes) -> None:
    """Same breeds in the same order; probabilities equal up to float noise (thread counts differ)."""
    a, b = json.loads(theirs)["predictions"], json.loads(ours)["predictions"]
    assert [[(t["label"], t["index"]) for t in p["top"]] for p in a] == [[(t["label"], t["index"]) for t in p["top"]] for p in b]
    for x, y in zip(a, b):
        assert [t["probability"] for t in x["top"]] == pytest.approx([t["probability"] for t in y["top"]], abs=1e-5)


def handle(service, model_dir, body: bytes, content_type: str, accept: str = "application/json"):
    context = Context(str(model_dir), {"Content-Type": content_type, "Accept": accept})
    out = service.handle([{"body": body}], context)
    return out[0], context


def test_the_toolkit_gives_the_same_answer_as_our_server(toolkit, model_dir, served):
    body, context = handle(toolkit, model_dir, BEAGLE.read_bytes(), "image/jpeg", "application/json; top_k=3")
    assert context.status is None, body
    assert context.content_types[0] == "application/json"
    status, _, ours = post(served, BEAGLE.read_bytes(), headers={"Accept": "application/json; top_k=3"})
    assert status == 200
    assert_same_answer(body, ours)
    assert json.loads(body)["predictions"][0]["top"][0]["label"].lower() == "beagle"


def test_json_bodies_arrive_as_text_and_still_work(toolkit, model_dir, served):
    import base64

    request = json.dumps({"images": [base64.b64encode(BEAGLE.read_bytes()).decode()], "top_k": 2}).encode()
    body, context = handle(toolkit, model_dir, request, "application/json")
    assert context.status is None, body
    status, _, ours = post(served, request, "application/json")
    assert status == 200
    assert_same_answer(body, ours)


@pytest.mark.parametrize(
    ("body", "content_type", "status", "error"),
    [
        (b"garbage", "image/jpeg", 400, "undecodable_image"),
        (b"hello", "text/plain", 415, "unsupported_content_type"),
    ],
)
def test_bad_input_keeps_its_4xx_status_in_the_container(toolkit, model_dir, body, content_type, status, error):
    answer, context = handle(toolkit, model_dir, body, content_type)
    assert context.status is not None and context.status[0] == status
    # The toolkit answers "<message>\n<traceback>"; our message is the JSON error body.
    assert json.loads(answer.splitlines()[0])["error"] == error
