"""Code written for SageMaker works against the local endpoint unchanged: the real boto3
sagemaker-runtime client and the SageMaker SDK's Predictor, pointed at 127.0.0.1."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.exceptions import ClientError

from dogbreed.serving.limits import MAX_PAYLOAD_BYTES
from tests.serving.conftest import ENDPOINT
from tests.serving.images import BEAGLE, COLLIE


@pytest.fixture
def runtime(served, fake_aws):
    return boto3.client("sagemaker-runtime", endpoint_url=served.url, region_name="us-east-1")


def test_invoke_endpoint_answers_like_sagemaker(runtime):
    response = runtime.invoke_endpoint(
        EndpointName=ENDPOINT, ContentType="image/jpeg", Accept="application/json", Body=BEAGLE.read_bytes()
    )
    assert response["ContentType"] == "application/json"
    assert response["InvokedProductionVariant"] == "AllTraffic"
    assert json.loads(response["Body"].read())["predictions"][0]["top"][0]["label"].lower() == "beagle"


def test_env_var_endpoint_url_works_too(served, fake_aws, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", served.url)
    client = boto3.client("sagemaker-runtime", region_name="us-east-1")
    response = client.invoke_endpoint(EndpointName=ENDPOINT, ContentType="image/jpeg", Body=COLLIE.read_bytes())
    assert json.loads(response["Body"].read())["predictions"][0]["top"][0]["label"].lower() == "collie"


def test_a_bad_image_is_a_model_error_with_the_original_status(runtime):
    with pytest.raises(runtime.exceptions.ModelError) as raised:
        runtime.invoke_endpoint(EndpointName=ENDPOINT, ContentType="image/jpeg", Body=b"not a jpeg")
    error = raised.value.response
    assert error["Error"]["Code"] == "ModelError"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert error["OriginalStatusCode"] == 400
    assert json.loads(error["OriginalMessage"])["error"] == "undecodable_image"
    assert error["Error"]["Message"].startswith("Received client error (400) from primary with message")


def test_a_wrong_content_type_is_a_model_error_415(runtime):
    with pytest.raises(runtime.exceptions.ModelError) as raised:
        runtime.invoke_endpoint(EndpointName=ENDPOINT, ContentType="text/plain", Body=b"hello")
    assert raised.value.response["OriginalStatusCode"] == 415


def test_an_unknown_endpoint_is_the_validation_error_sagemaker_gives(runtime):
    with pytest.raises(runtime.exceptions.ValidationError) as raised:
        runtime.invoke_endpoint(EndpointName="no-such-endpoint", ContentType="image/jpeg", Body=BEAGLE.read_bytes())
    assert raised.value.response["Error"]["Message"] == "Endpoint no-such-endpoint of account 000000000000 not found."


def test_an_oversized_body_is_refused_as_sagemaker_does(runtime):
    with pytest.raises(ClientError) as raised:
        runtime.invoke_endpoint(EndpointName=ENDPOINT, ContentType="image/jpeg", Body=b"\0" * (MAX_PAYLOAD_BYTES + 1))
    assert raised.value.response["Error"]["Code"] == "413"
    assert "HTTP content length exceeded 6291456 bytes" in raised.value.response["Error"]["Message"]


def test_the_sdk_predictor_works_unchanged(served, fake_aws, monkeypatch):
    monkeypatch.setenv("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
    import sagemaker
    from sagemaker.deserializers import JSONDeserializer
    from sagemaker.predictor import Predictor
    from sagemaker.serializers import IdentitySerializer

    boto_session = boto3.Session(region_name="us-east-1")
    session = sagemaker.Session(
        boto_session=boto_session,
        sagemaker_runtime_client=boto_session.client("sagemaker-runtime", endpoint_url=served.url),
        sagemaker_client=boto_session.client("sagemaker", endpoint_url="http://127.0.0.1:9"),  # never called
    )
    predictor = Predictor(
        ENDPOINT, sagemaker_session=session, serializer=IdentitySerializer("image/jpeg"), deserializer=JSONDeserializer()
    )
    answer = predictor.predict(BEAGLE.read_bytes())
    assert answer["predictions"][0]["top"][0]["label"].lower() == "beagle"
