"""inference.py's four hooks, in-process, on a real trained model (no server)."""

from __future__ import annotations

import base64
import importlib
import json
import sys

import pytest
from sagemaker_inference.errors import GenericInferenceToolkitError

from tests.serving.images import BEAGLE, COLLIE, png_bomb, rotated_with_exif, variants
from tests.serving.model_factory import torch_threads


@pytest.fixture(scope="module")
def handler(model_dir):
    """The model's own code/inference.py, imported as the container imports it."""
    sys.path.insert(0, str(model_dir / "code"))
    try:
        sys.modules.pop("inference", None)
        module = importlib.import_module("inference")
        with torch_threads(1):
            yield module, module.model_fn(str(model_dir))
    finally:
        sys.path.remove(str(model_dir / "code"))
        sys.modules.pop("inference", None)


def answer(handler, body, content_type="image/jpeg", accept="application/json"):
    module, model = handler
    text, reply_type = module.output_fn(module.predict_fn(module.input_fn(body, content_type), model), accept)
    assert reply_type == "application/json"
    return json.loads(text)


def best(document, image=0):
    return document["predictions"][image]["top"][0]["label"].lower()


@pytest.mark.parametrize("kind", ["jpeg", "png", "grayscale", "rgba", "cmyk", "palette"])
def test_every_image_mode_is_read_as_rgb_and_named(handler, kind):
    body, content_type = variants()[kind]
    document = answer(handler, body, content_type)
    top = document["predictions"][0]["top"]
    assert top[0]["label"].lower() == "beagle"
    assert len(top) == 5 and all(set(t) == {"label", "index", "probability"} for t in top)
    assert top == sorted(top, key=lambda t: -t["probability"])
    assert (
        0.99
        < sum(
            t["probability"] for t in answer(handler, body, content_type, "application/json; top_k=10")["predictions"][0]["top"]
        )
        < 1.01
    )


def test_exif_orientation_is_honoured(handler):
    module, model = handler
    upright = module._tensor(BEAGLE.read_bytes(), 0, model.transform)
    turned = module._tensor(rotated_with_exif(), 0, model.transform)
    # JPEG re-encoding moves pixels a little; ignoring the tag would move them a lot.
    assert (upright - turned).abs().mean() < 0.05
    assert best(answer(handler, rotated_with_exif())) == "beagle"


def test_json_batch_with_top_k_keeps_order(handler):
    images = [base64.b64encode(path.read_bytes()).decode() for path in (COLLIE, BEAGLE)]
    images[1] = "data:image/jpeg;base64," + images[1]
    document = answer(handler, json.dumps({"images": images, "top_k": 2}), "application/json")
    assert [best(document, 0), best(document, 1)] == ["collie", "beagle"]
    assert [len(p["top"]) for p in document["predictions"]] == [2, 2]


def test_top_k_sources_in_order_json_then_accept_then_default(handler, monkeypatch):
    body = json.dumps({"image": base64.b64encode(BEAGLE.read_bytes()).decode(), "top_k": 1})
    assert len(answer(handler, body, "application/json", "application/json; top_k=3")["predictions"][0]["top"]) == 1
    assert len(answer(handler, BEAGLE.read_bytes(), accept="application/json; top_k=3")["predictions"][0]["top"]) == 3
    monkeypatch.setenv("DOGBREED_TOP_K", "4")
    assert len(answer(handler, BEAGLE.read_bytes(), accept="*/*")["predictions"][0]["top"]) == 4
    # More than there are classes: all of them.
    assert len(answer(handler, BEAGLE.read_bytes(), accept="application/json;top_k=500")["predictions"][0]["top"]) == 10


@pytest.mark.parametrize(
    ("body", "content_type", "status", "error"),
    [
        (b"not an image at all", "image/jpeg", 400, "undecodable_image"),
        (BEAGLE.read_bytes()[:300], "image/jpeg", 400, "undecodable_image"),  # truncated
        (b"", "image/png", 400, "bad_request"),
        (b"hello", "text/plain", 415, "unsupported_content_type"),
        (b"hello", None, 415, "unsupported_content_type"),
        (png_bomb(), "image/png", 413, "too_large"),  # Pillow's own bomb error
        (png_bomb(10000, 10000), "image/png", 413, "too_large"),  # under Pillow's, over ours
        ("{not json", "application/json", 400, "bad_request"),
        ('{"images": "abc"}', "application/json", 400, "bad_request"),
        ('{"images": ["@@@"]}', "application/json", 400, "bad_request"),
        ('{"images": []}', "application/json", 400, "bad_request"),
        ('{"pictures": []}', "application/json", 400, "bad_request"),
        (json.dumps({"images": ["AAAA"] * 65}), "application/json", 413, "too_large"),
        (json.dumps({"image": "AAAA", "top_k": 0}), "application/json", 400, "bad_request"),
        (json.dumps({"image": "AAAA", "top_k": True}), "application/json", 400, "bad_request"),
    ],
)
@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_bad_requests_raise_typed_errors_the_toolkit_understands(handler, body, content_type, status, error):
    with pytest.raises(GenericInferenceToolkitError) as raised:
        answer(handler, body, content_type)
    assert raised.value.status_code == status
    assert json.loads(raised.value.message) == {"error": error, "detail": raised.value.detail}


def test_a_bomb_is_refused_before_decoding(handler):
    module, _ = handler
    # input_fn alone refuses it: no pixel is decoded, so this takes no memory to speak of.
    with pytest.raises(module.TooLarge):
        module.input_fn(png_bomb(), "image/png")


def test_unacceptable_accept_is_406_and_bad_accept_top_k_is_400(handler):
    module, _ = handler
    with pytest.raises(module.NotAcceptable):
        answer(handler, BEAGLE.read_bytes(), accept="image/png")  # text/csv is served now
    with pytest.raises(module.BadRequest):
        answer(handler, BEAGLE.read_bytes(), accept="application/json; top_k=many")


def test_deploy_response_probabilities_gives_the_seeds_shape_unless_top_k_is_asked(handler, monkeypatch):
    module, model = handler
    request = module.input_fn(BEAGLE.read_bytes(), "image/jpeg")
    prediction = module.predict_fn(request, model)
    monkeypatch.setenv("DOGBREED_RESPONSE", "probabilities")
    text, reply_type = module.output_fn(prediction, "application/json")
    rows = json.loads(text)
    assert reply_type == "application/json" and len(rows) == 1 and len(rows[0]) == len(model.labels)
    assert rows[0].index(max(rows[0])) == prediction.probabilities[0].argmax().item()
    # A top_k on the Accept header (as dogbreed predict sends) or response=top_k picks the other form.
    for accept in ("application/json; top_k=2", "application/json; response=top_k"):
        assert "predictions" in json.loads(module.output_fn(prediction, accept)[0])
    monkeypatch.setenv("DOGBREED_RESPONSE", "top_k")
    assert isinstance(json.loads(module.output_fn(prediction, "application/json; response=probabilities")[0]), list)
    monkeypatch.setenv("DOGBREED_RESPONSE", "everything")
    with pytest.raises(module.BadRequest, match="DOGBREED_RESPONSE must be one of top_k, probabilities"):
        module.output_fn(prediction, "application/json")


def test_npy_csv_and_jsonlines_answers_carry_the_same_probabilities(handler):
    import csv
    import io

    import numpy as np

    module, model = handler
    prediction = module.predict_fn(module.input_fn(BEAGLE.read_bytes(), "image/jpeg"), model)
    body, reply_type = module.output_fn(prediction, "application/x-npy")
    array = np.load(io.BytesIO(body), allow_pickle=False)
    assert reply_type == "application/x-npy" and array.dtype == np.float32 and array.shape == (1, len(model.labels))
    text, _ = module.output_fn(prediction, "text/csv")
    header, row = list(csv.reader(io.StringIO(text)))
    assert header == model.labels
    np.testing.assert_allclose([float(v) for v in row], array[0], atol=1e-6)
    line = json.loads(module.output_fn(prediction, "application/jsonlines")[0])
    np.testing.assert_allclose(line["probabilities"], array[0], atol=1e-6)
    assert line["top"][0]["index"] == int(array[0].argmax()) and 0 <= line["dog_probability"] <= 1


def _npy_claiming(shape: tuple[int, ...], body: bytes) -> bytes:
    import io

    import numpy as np

    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(out, {"descr": "|u1", "fortran_order": False, "shape": shape})
    return out.getvalue() + body


def test_an_npy_header_that_claims_more_than_the_body_holds_is_400_before_any_allocation(handler):
    module, _ = handler
    lying = _npy_claiming((99999, 99999, 3), bytes(12))  # numpy would allocate 28 GB for this
    with pytest.raises(
        module.BadRequest, match=r"declares uint8 \(99999, 99999, 3\) \(29,999,400,003 bytes\) but 12 bytes follow"
    ):
        module.input_fn(lying, "application/x-npy")
    honest = _npy_claiming((2, 2, 3), bytes(12))
    assert module.input_fn(honest, "application/x-npy").images[0].shape == (2, 2, 3)


def test_a_strip_of_an_image_is_answered_from_its_centre_without_blowing_up(handler):
    import io

    import numpy as np

    module, model = handler
    assert repr(model.transform.transforms[0].transforms[0]) == "BoundedAspect(max_ratio=16)"
    out = io.BytesIO()
    np.save(out, np.full((1, 100_000, 3), 128, dtype=np.uint8))  # 300 KB: 256 x 25.6M pixels once resized
    text, _ = module.output_fn(module.predict_fn(module.input_fn(out.getvalue(), "application/x-npy"), model), None)
    assert len(json.loads(text)["predictions"]) == 1


def test_a_boolean_top_k_is_named_as_sent(handler):
    module, _ = handler
    body = json.dumps({"image": base64.b64encode(BEAGLE.read_bytes()).decode(), "top_k": True})
    with pytest.raises(module.BadRequest, match=r'"top_k" must be a whole number of at least 1, got True'):
        module.input_fn(body, "application/json")


@pytest.mark.parametrize(
    ("accept", "answered"),
    [
        ("application/json;q=0, text/csv", "text/csv"),  # q=0: not acceptable (RFC 9110)
        ("application/json;q=0, */*", "application/jsonlines"),  # the wildcard's next served type
        ("text/csv;q=0.5, application/jsonlines", "application/jsonlines"),  # the higher q wins
        ("text/csv;q=0.5, application/x-npy;q=0.5", "text/csv"),  # equal q: the first
        ("application/json;q=junk", "application/json"),  # an unreadable q counts as 1
    ],
)
def test_accept_quality_values_choose_the_answer(handler, accept, answered):
    module, model = handler
    prediction = module.predict_fn(module.input_fn(BEAGLE.read_bytes(), "image/jpeg"), model)
    assert module.output_fn(prediction, accept)[1] == answered


def test_accept_that_refuses_everything_served_is_406(handler):
    module, model = handler
    prediction = module.predict_fn(module.input_fn(BEAGLE.read_bytes(), "image/jpeg"), model)
    with pytest.raises(module.NotAcceptable):
        module.output_fn(prediction, "application/json;q=0")
    with pytest.raises(module.NotAcceptable):
        module.output_fn(prediction, "*/*;q=0")
