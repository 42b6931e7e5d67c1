"""predict on SageMaker: the exact InvokeEndpoint call, and its failures in one line.

moto's invoke_endpoint cannot take binary bodies, so the runtime client is stubbed with
botocore's Stubber, which checks the exact parameters and the service's response shape.
"""

from __future__ import annotations

import io
import json

import pytest

from dogbreed.errors import DogbreedError, NotFoundError
from tests.backends.sagemaker.conftest import make_backend, sm_config


@pytest.fixture
def backend(tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    return make_backend(sm_config(tmp_path))


@pytest.fixture
def photo(predict_dir) -> bytes:
    return sorted(predict_dir.glob("*.jpg"))[0].read_bytes()


def _stub(backend):
    from botocore.stub import Stubber

    return Stubber(backend._runtime)


def test_invoke_sends_the_image_bytes_and_returns_the_body(backend, photo):
    from botocore.response import StreamingBody

    answer = json.dumps({"predictions": [{"label": "Beagle", "index": 1, "probability": 0.9}]}).encode()
    with _stub(backend) as stub:
        stub.add_response(
            "invoke_endpoint",
            {"Body": StreamingBody(io.BytesIO(answer), len(answer)), "ContentType": "application/json"},
            expected_params={
                "EndpointName": "dogbreed",
                "Body": photo,
                "ContentType": "image/jpeg",
                "Accept": "application/json",
            },
        )
        assert backend.invoke("dogbreed", photo, "image/jpeg") == answer
        stub.assert_no_pending_responses()


def test_a_model_error_is_one_line_with_the_containers_message(backend, photo):
    with _stub(backend) as stub:
        stub.add_client_error(
            "invoke_endpoint",
            service_error_code="ModelError",
            service_message="Received client error (415) from primary",
            http_status_code=424,
            modeled_fields={"OriginalStatusCode": 415, "OriginalMessage": '{"error": "unsupported content type"}'},
        )
        with pytest.raises(DogbreedError) as caught:
            backend.invoke("dogbreed", photo, "image/gif")
    assert str(caught.value) == 'endpoint dogbreed refused the request: {"error": "unsupported content type"}'


def test_an_unknown_endpoint_is_not_found(backend, photo):
    with _stub(backend) as stub:
        stub.add_client_error(
            "invoke_endpoint",
            service_error_code="ValidationError",
            service_message="Endpoint dogbreed of account 123456789012 not found.",
            http_status_code=400,
        )
        with pytest.raises(NotFoundError, match="deploy it first"):
            backend.invoke("dogbreed", photo, "image/jpeg")
