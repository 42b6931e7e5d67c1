"""Clients nobody here wrote, unchanged: the SageMaker SDK's PyTorchPredictor with its default
NumPy serializers, the seed notebook's invoke loop, and the CSV / JSON Lines answers Batch
Transform users ask for, all against a real local endpoint on 127.0.0.1."""

from __future__ import annotations

import csv
import io
import json

import boto3
import numpy as np
import pytest

from tests.serving.conftest import ENDPOINT
from tests.serving.images import BEAGLE, COLLIE, photo
from tests.serving.test_cli_end_to_end import answer, cli

# Stanford Dogs labels of the served model (its classes.json), compared case-insensitively.
BEAGLE_LABEL, COLLIE_LABEL = "beagle", "collie"


def sdk_session(url: str, monkeypatch):
    monkeypatch.setenv("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
    import sagemaker

    boto_session = boto3.Session(region_name="us-east-1")
    return sagemaker.Session(
        boto_session=boto_session,
        sagemaker_runtime_client=boto_session.client("sagemaker-runtime", endpoint_url=url),
        sagemaker_client=boto_session.client("sagemaker", endpoint_url="http://127.0.0.1:9"),  # never called
    )


@pytest.fixture
def runtime(served, fake_aws):
    return boto3.client("sagemaker-runtime", endpoint_url=served.url, region_name="us-east-1")


def invoke(runtime, body: bytes, content_type: str, accept: str | None = None):
    extra = {"Accept": accept} if accept else {}
    response = runtime.invoke_endpoint(EndpointName=ENDPOINT, ContentType=content_type, Body=body, **extra)
    return response["ContentType"], response["Body"].read()


def top_label(runtime, body: bytes, content_type: str = "image/jpeg") -> str:
    _, reply = invoke(runtime, body, content_type, "application/json")
    return json.loads(reply)["predictions"][0]["top"][0]["label"]


def test_pytorch_predictor_with_default_serializers(served, fake_aws, monkeypatch):
    monkeypatch.setenv("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
    from sagemaker.deserializers import NumpyDeserializer
    from sagemaker.pytorch import PyTorchPredictor
    from sagemaker.serializers import NumpySerializer

    predictor = PyTorchPredictor(ENDPOINT, sagemaker_session=sdk_session(served.url, monkeypatch))
    # The defaults themselves, not serializers this test chose.
    assert isinstance(predictor.serializer, NumpySerializer) and isinstance(predictor.deserializer, NumpyDeserializer)

    one = predictor.predict(np.asarray(photo(BEAGLE)))  # H×W×3 uint8, as a user reads a photo
    assert isinstance(one, np.ndarray) and one.dtype == np.float32 and one.shape[0] == 1
    assert one.shape[1] >= 10 and abs(float(one.sum()) - 1) < 1e-3

    size = (256, 256)
    batch = np.stack([np.asarray(photo(path).resize(size)) for path in (BEAGLE, COLLIE)])  # N×H×W×3
    both = predictor.predict(batch)
    assert both.shape == (2, one.shape[1])
    np.testing.assert_allclose(both.sum(axis=1), 1, atol=1e-3)
    # The classes the array answers are the ones the JSON answer names for the same photo.
    runtime = boto3.client("sagemaker-runtime", endpoint_url=served.url, region_name="us-east-1")
    for row, path in zip(both, (BEAGLE, COLLIE)):
        _, reply = invoke(runtime, path.read_bytes(), "image/jpeg", "application/json")
        assert int(row.argmax()) == json.loads(reply)["predictions"][0]["top"][0]["index"]


def test_a_normalised_float_batch_is_used_as_is(runtime):
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    crop = np.asarray(photo(BEAGLE).resize((256, 256)).crop((16, 16, 240, 240)), dtype=np.float32) / 255
    tensor = ((crop - mean) / std).transpose(2, 0, 1)[None].astype(np.float32)  # 1×3×224×224
    content_type, reply = invoke(runtime, _npy(tensor), "application/x-npy", "application/json")
    assert content_type == "application/json"
    assert json.loads(reply)["predictions"][0]["top"][0]["label"].lower() == BEAGLE_LABEL


def _npy(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.save(out, array)
    return out.getvalue()


@pytest.mark.parametrize(
    ("array", "detail"),
    [
        (np.zeros((4, 4), dtype=np.uint8), "H×W×3 or N×H×W×3"),
        (np.zeros((4, 4, 3), dtype=np.float32), "N×3×H×W"),
        (np.full((4, 4, 3), 300, dtype=np.int32), "0-255"),
        (np.array(["a", "b"]), "integers 0-255 or float32"),
    ],
)
def test_a_bad_array_is_one_clear_400(runtime, array, detail):
    with pytest.raises(runtime.exceptions.ModelError) as raised:
        invoke(runtime, _npy(array), "application/x-npy")
    assert raised.value.response["OriginalStatusCode"] == 400
    assert detail in json.loads(raised.value.response["OriginalMessage"])["detail"]


def test_a_pickled_array_is_refused_not_loaded(runtime):
    with pytest.raises(runtime.exceptions.ModelError) as raised:
        invoke(runtime, _npy(np.array([{"a": 1}], dtype=object)), "application/x-npy")
    assert raised.value.response["OriginalStatusCode"] == 400


def test_csv_has_a_header_of_breed_names_and_a_row_per_image(runtime):
    content_type, reply = invoke(runtime, BEAGLE.read_bytes(), "image/jpeg", "text/csv")
    assert content_type == "text/csv"
    header, *rows = list(csv.reader(io.StringIO(reply.decode())))
    assert len(rows) == 1 and len(rows[0]) == len(header) >= 10
    probabilities = [float(value) for value in rows[0]]
    assert abs(sum(probabilities) - 1) < 1e-3
    assert header[int(np.argmax(probabilities))] == top_label(runtime, BEAGLE.read_bytes())


def test_json_lines_has_a_line_per_image_with_the_dog_probability(runtime):
    import base64

    images = [base64.b64encode(path.read_bytes()).decode() for path in (BEAGLE, COLLIE)]
    body = json.dumps({"images": images, "top_k": 2}).encode()
    content_type, reply = invoke(runtime, body, "application/json", "application/jsonlines")
    assert content_type == "application/jsonlines"
    lines = [json.loads(line) for line in reply.decode().splitlines()]
    assert [line["top"][0]["label"].lower() for line in lines] == [BEAGLE_LABEL, COLLIE_LABEL]
    for line in lines:
        assert set(line) == {"probabilities", "top", "dog_probability"} and len(line["top"]) == 2
        assert line["dog_probability"] > 0.5  # both are dogs, and the model has the ImageNet head
        assert line["top"][0]["index"] == int(np.argmax(line["probabilities"]))


def test_the_first_servable_accept_entry_of_the_highest_q_wins_and_none_is_406(runtime):
    content_type, _ = invoke(runtime, BEAGLE.read_bytes(), "image/jpeg", "image/png, text/csv, application/json")
    assert content_type == "text/csv"
    content_type, _ = invoke(runtime, BEAGLE.read_bytes(), "image/jpeg", "image/png, text/csv;q=0.5, application/json")
    assert content_type == "application/json"
    with pytest.raises(runtime.exceptions.ModelError) as raised:
        invoke(runtime, BEAGLE.read_bytes(), "image/jpeg", "image/png")
    assert raised.value.response["OriginalStatusCode"] == 406
    assert "text/csv" in json.loads(raised.value.response["OriginalMessage"])["detail"]


def test_the_seeds_loop_runs_verbatim_against_deploy_response_probabilities(
    tmp_path, model_tar, fake_aws, no_server_left, monkeypatch
):
    deployed = cli(
        tmp_path,
        "deploy",
        "--model",
        str(model_tar),
        "--port",
        "0",
        "--ttl",
        "20m",
        "--set",
        "deploy.response=probabilities",
        "--json",
    )
    assert deployed.returncode == 0, deployed.stderr
    url = answer(deployed)["url"]
    try:
        runtime = boto3.client("sagemaker-runtime", endpoint_url=url, region_name="us-east-1")
        endpoint_name = "dogbreed"
        paths = [BEAGLE, COLLIE]
        # --- the seed notebook's loop, verbatim ---
        predictions = []
        for path in paths:
            with open(path, "rb") as f:
                payload = f.read()
            response = runtime.invoke_endpoint(EndpointName=endpoint_name, ContentType="image/jpeg", Body=payload)
            body = response["Body"].read().decode("utf-8")
            predictions.append(np.argmax(np.asarray(json.loads(body)), 1) + 1)
        # --- end of the seed's loop ---
        classes = json.loads(body)
        assert isinstance(classes, list) and len(classes) == 1 and abs(sum(classes[0]) - 1) < 1e-3

        # The class numbers are 1-based indices into classes.json, the breeds the JSON form names.
        for path, predicted in zip(paths, predictions):
            wanted = runtime.invoke_endpoint(
                EndpointName=endpoint_name, ContentType="image/jpeg", Accept="application/json; top_k=1", Body=path.read_bytes()
            )
            assert predicted.tolist() == [json.loads(wanted["Body"].read())["predictions"][0]["top"][0]["index"] + 1]

        # dogbreed predict asks for top_k itself, so it keeps working against such an endpoint.
        predicted = cli(tmp_path, "predict", str(BEAGLE), "--top-k", "2", "--json")
        assert predicted.returncode == 0, predicted.stderr
        assert answer(predicted)["predictions"][0]["top"][0]["label"].lower() == BEAGLE_LABEL
    finally:
        assert cli(tmp_path, "teardown", "--json").returncode == 0
