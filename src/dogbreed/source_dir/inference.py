"""The inference handler: SageMaker's four hooks, unchanged in the PyTorch container and in ours.

    model_fn(model_dir)               -> BreedClassifier (loaded once per process)
    input_fn(body, content_type)      -> InferenceRequest (validated, still compressed)
    predict_fn(request, model)        -> Prediction (class probabilities)
    output_fn(prediction, accept)     -> (body, content type)

Requests (Content-Type):
- `image/jpeg`, `image/png`, `application/x-image`: one image, raw bytes.
- `application/json`: {"images": ["<base64>", ...], "top_k": 3}; "image": "<base64>" for one;
  data: URLs work.
- `application/x-npy` (what the SageMaker SDK's NumpySerializer sends, PyTorchPredictor's
  default): an image array, H×W×3 or N×H×W×3 of integers 0-255 (resized and cropped here, as
  a photo is), or float N×3×H×W already resized, cropped and normalised with the ImageNet
  mean and std (used as is). Never unpickled.

Answers (Accept; the first entry this model can serve wins):
- `application/json`: {"predictions": [{"top": [{"label", "index", "probability"}, ...],
  "dog_probability"}, ...]}, one entry per image in request order, labels from classes.json.
  With DOGBREED_RESPONSE=probabilities (the config's deploy.response) the seed's shape
  instead: a JSON list of per-image probability lists in class order, so
  `np.argmax(np.asarray(json.loads(body)), 1)` works. A `top_k` (in the body or on the Accept
  header) or `response=top_k|probabilities` on the Accept header chooses per request.
- `application/jsonlines`: one line per image, {"probabilities": [...], "top": [...],
  "dog_probability"}.
- `text/csv`: a header of breed labels, then one row of probabilities per image.
- `application/x-npy`: the N×C float32 probabilities (what NumpyDeserializer reads).
A missing or `*/*` Accept is application/json (both servers substitute the default).
How many breeds `top` holds, first found wins: the JSON field `top_k`, a `top_k` parameter on
the Accept header (`Accept: application/json; top_k=3`), DOGBREED_TOP_K, then 5.

Bad input raises a RequestError subclass carrying an HTTP status (400 undecodable or
malformed, 406 unacceptable Accept, 413 too many pixels or images, 415 content type).
Inside the SageMaker container they are GenericInferenceToolkitErrors, so the toolkit
answers with that status instead of 500 (sagemaker_inference/transformer.py); their
message is the JSON error body, which the toolkit puts first in its response.

Images are decoded one at a time in predict_fn, so a request holds at most one full-size
bitmap; input_fn only reads headers, which is how decompression bombs are refused before
any pixel is decoded. Runs on Python 3.12 / torch 2.6: stdlib, torch, torchvision, Pillow, numpy.
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import json
import math
import os
from pathlib import Path

import numpy as np
import torch
from breedkit import artifacts, imagenet, models, pixels, presets
from breedkit import classes as breed_classes
from PIL import Image, UnidentifiedImageError

try:  # present in the SageMaker inference containers (and in our dev environment)
    from sagemaker_inference.errors import GenericInferenceToolkitError as _ErrorBase
except ImportError:  # our local server: a plain exception carrying the same fields
    _ErrorBase = Exception

RAW_IMAGE_TYPES = ("image/jpeg", "image/png", "application/x-image")
JSON_TYPE = "application/json"
NPY_TYPE = "application/x-npy"
CSV_TYPE = "text/csv"
JSONLINES_TYPE = "application/jsonlines"
# Accept entries -> the type answered; wildcards take the first of their family.
ANSWER_TYPES = {
    JSON_TYPE: JSON_TYPE,
    "application/*": JSON_TYPE,
    "*/*": JSON_TYPE,
    JSONLINES_TYPE: JSONLINES_TYPE,
    "application/x-jsonlines": JSONLINES_TYPE,
    "application/jsonl": JSONLINES_TYPE,
    CSV_TYPE: CSV_TYPE,
    "text/*": CSV_TYPE,
    NPY_TYPE: NPY_TYPE,
}
RESPONSES = ("top_k", "probabilities")
DEFAULT_RESPONSE = "top_k"
# Pillow's own bomb threshold (also the config's data.max_pixels): about 0.27 GB as RGB.
MAX_IMAGE_PIXELS = 89_478_485
MAX_REQUEST_PIXELS = 2 * MAX_IMAGE_PIXELS
MAX_IMAGES = 64
DEFAULT_TOP_K = 5
# Formats Pillow may open: the common photo formats, none of the exotic decoders.
IMAGE_FORMATS = pixels.SERVED_FORMATS


class RequestError(_ErrorBase):
    """A request the model cannot answer; `status_code` is the HTTP status to send."""

    status_code = 400
    error = "bad_request"
    phrase = "Bad Request"

    def __init__(self, detail: str) -> None:
        self.detail = detail
        body = json.dumps(self.to_json())
        if _ErrorBase is Exception:
            Exception.__init__(self, detail)
        else:
            _ErrorBase.__init__(self, self.status_code, body, self.phrase)
        self.message = body

    def to_json(self) -> dict[str, str]:
        return {"error": self.error, "detail": self.detail}

    def __str__(self) -> str:
        return self.detail


class BadRequest(RequestError):
    pass


class UndecodableImage(RequestError):
    error = "undecodable_image"


class NotAcceptable(RequestError):
    status_code = 406
    error = "not_acceptable"
    phrase = "Not Acceptable"


class TooLarge(RequestError):
    status_code = 413
    error = "too_large"
    phrase = "Payload Too Large"


class UnsupportedContentType(RequestError):
    status_code = 415
    error = "unsupported_content_type"
    phrase = "Unsupported Media Type"


class BreedClassifier:
    """The network, its eval preset and its labels: what model_fn loads once.

    The network runs as backbone then heads, so the pretrained ImageNet classifier (when the
    model dir has it) reads the same features as the breed head: the dog probability costs
    no second forward pass. With test-time augmentation ('flip') each photo and its mirror
    image go through in one batch and their probabilities are averaged, as train.py measured."""

    def __init__(
        self,
        network: torch.nn.Module,
        transform,
        labels: list[str],
        device: torch.device,
        *,
        arch: str,
        imagenet_head: torch.nn.Linear | None = None,
        tta: str = "none",
    ) -> None:
        self.network = network
        self.backbone, self.head = models.split_backbone_head(network, arch)
        self.imagenet_head = imagenet_head
        self.transform = transform
        self.labels = labels
        self.device = device
        self.tta = tta

    @torch.inference_mode()
    def __call__(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """[N, 3, H, W] -> breed probabilities [N, classes] and dog probabilities [N] (None
        without an ImageNet head), float32 on the CPU."""
        views = [batch, presets.hflip(batch)] if self.tta == "flip" else [batch]
        features = self.backbone(torch.cat(views).to(self.device))
        breeds = torch.softmax(self.head(features).float(), dim=1)
        breeds = breeds.view(len(views), len(batch), -1).mean(0).cpu()
        if self.imagenet_head is None:
            return breeds, None
        imagenet_probabilities = torch.softmax(self.imagenet_head(features).float(), dim=1)
        dogs = imagenet_probabilities[:, imagenet.DOG_CATEGORIES].sum(1)
        return breeds, dogs.view(len(views), len(batch)).mean(0).cpu()


class InferenceRequest:
    """Compressed images whose headers passed the checks (or uint8 H×W×3 arrays), or a batch
    already normalised (`tensor`), and the top_k the body asked for."""

    def __init__(self, images: list[bytes | np.ndarray], top_k: int | None, tensor: torch.Tensor | None = None) -> None:
        self.images = images
        self.top_k = top_k
        self.tensor = tensor


class Prediction:
    def __init__(
        self, probabilities: torch.Tensor, labels: list[str], top_k: int | None, dog_probability: torch.Tensor | None = None
    ) -> None:
        self.probabilities = probabilities  # [images, classes], float32 on the CPU
        self.labels = labels
        self.top_k = top_k
        self.dog_probability = dog_probability  # [images], or None: the model has no ImageNet head


def _media_type(header: str | None) -> tuple[str, dict[str, str]]:
    """'application/json; top_k=3' -> ('application/json', {'top_k': '3'})."""
    media, *params = (header or "").split(";")
    parsed = {}
    for param in params:
        key, _, value = param.partition("=")
        parsed[key.strip().lower()] = value.strip().strip('"')
    return media.strip().lower(), parsed


def _top_k(value: object, where: str) -> int:
    try:
        # True is an int to Python, not a count to anyone else.
        k = None if isinstance(value, bool) else int(value) if not isinstance(value, float) or value.is_integer() else None
    except (TypeError, ValueError, OverflowError):
        k = None
    if k is None or k < 1:
        raise BadRequest(f"{where} must be a whole number of at least 1, got {value!r}")
    return k


def _decode_base64(text: object, position: int) -> bytes:
    if not isinstance(text, str):
        raise BadRequest(f"images[{position}] must be a base64 string, got {type(text).__name__}")
    if text.startswith("data:"):
        text = text.partition(",")[2]  # data:image/jpeg;base64,<data>
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadRequest(f"images[{position}] is not valid base64 ({exc})") from None


def _from_json(body: str | bytes) -> InferenceRequest:
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadRequest(f"the body is not valid JSON ({exc})") from None
    except RecursionError:  # '[' x 100,000: the client's fault, not the server's
        raise BadRequest('the JSON body nests too deeply; send {"images": ["<base64>", ...]}') from None
    if not isinstance(document, dict) or ("images" not in document and "image" not in document):
        raise BadRequest('expected a JSON object like {"images": ["<base64>", ...], "top_k": 5}')
    encoded = document["images"] if "images" in document else [document["image"]]
    if not isinstance(encoded, list):
        raise BadRequest('"images" must be a list of base64 strings')
    if len(encoded) > MAX_IMAGES:
        raise TooLarge(f"{len(encoded)} images in one request; send at most {MAX_IMAGES}")
    top_k = document.get("top_k")
    return InferenceRequest(
        [_decode_base64(text, i) for i, text in enumerate(encoded)],
        None if top_k is None else _top_k(top_k, '"top_k"'),
    )


def _npy_header(body: bytes) -> tuple[tuple[int, ...], np.dtype]:
    """The shape and dtype an .npy body declares, checked against the bytes that follow: numpy
    allocates what the header claims before it reads the data, so a 100-byte body claiming
    99999x99999x3 would ask for 28 GB."""
    stream = io.BytesIO(body)
    version = np.lib.format.read_magic(stream)
    read_header = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    if version not in read_header:
        raise ValueError(f".npy format version {version[0]}.{version[1]} (send version 1.0 or 2.0)")
    shape, _, dtype = read_header[version](stream)
    expected = math.prod(shape) * dtype.itemsize
    if dtype.hasobject or expected != len(body) - stream.tell():
        raise ValueError(
            f"its header declares {dtype} {shape} ({expected:,} bytes) but {len(body) - stream.tell():,} bytes follow"
        )
    return shape, dtype


def _from_npy(body: bytes) -> InferenceRequest:
    """An .npy image array: integers 0-255 as H×W×3 / N×H×W×3, or float N×3×H×W normalised."""
    try:
        _npy_header(body)
        array = np.load(io.BytesIO(body), allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise BadRequest(f"the body is not a readable .npy array ({exc}); send numpy.save output") from None
    if not isinstance(array, np.ndarray) or array.dtype.kind not in "uif":
        raise BadRequest(f"the .npy array holds {getattr(array, 'dtype', type(array))}; send integers 0-255 or float32")
    if array.dtype.kind == "f":
        if array.ndim != 4 or array.shape[1] != 3:
            raise BadRequest(
                f"a float array must be N×3×H×W, already resized, cropped and normalised; got shape {array.shape} "
                "(send integers 0-255 as H×W×3 or N×H×W×3 to have them prepared here)"
            )
        if not np.isfinite(array).all():
            raise BadRequest("the float array holds NaN or infinite values")
    else:
        if array.ndim == 3:
            array = array[None]
        if array.ndim != 4 or array.shape[3] != 3:
            raise BadRequest(f"an integer image array must be H×W×3 or N×H×W×3 (RGB); got shape {array.shape}")
        if array.size and (array.min() < 0 or array.max() > 255):
            raise BadRequest("integer image values must lie in 0-255")
    count, height, width = (array.shape[0], *array.shape[2:4]) if array.dtype.kind == "f" else array.shape[:3]
    if count == 0 or height == 0 or width == 0:
        raise BadRequest(f"the array of shape {array.shape} holds no image")
    if count > MAX_IMAGES:
        raise TooLarge(f"{count} images in one request; send at most {MAX_IMAGES}")
    if height * width > MAX_IMAGE_PIXELS or count * height * width > MAX_REQUEST_PIXELS:
        raise TooLarge(f"{count} image(s) of {width}x{height} are too many pixels: downscale or send fewer")
    if array.dtype.kind == "f":
        return InferenceRequest([], None, torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)))
    return InferenceRequest(list(array.astype(np.uint8, copy=False)), None)


def _open(blob: bytes, position: int) -> Image.Image:
    """Pillow's lazy open: reads the header only, so size checks come before decoding."""
    if not blob:
        raise BadRequest("empty image: the body has no bytes" if position == 0 else f"image {position} is empty")
    try:
        return Image.open(io.BytesIO(blob), formats=IMAGE_FORMATS)
    except Image.DecompressionBombError as exc:
        raise TooLarge(f"image {position} claims too many pixels ({exc})") from None
    except UnidentifiedImageError:
        raise UndecodableImage(
            f"image {position} is not a readable {'/'.join(IMAGE_FORMATS)} image; send a photo in one of those formats "
            "(dogbreed predict converts a TIFF or AVIF itself)"
        ) from None
    except (OSError, ValueError, SyntaxError) as exc:  # a recognised format with a broken header
        raise UndecodableImage(f"image {position} has a broken header ({type(exc).__name__}: {exc})") from None


def _check_sizes(images: list[bytes]) -> None:
    total = 0
    for position, blob in enumerate(images):
        with _open(blob, position) as image:
            width, height = image.size
        pixels = width * height
        if pixels > MAX_IMAGE_PIXELS:
            raise TooLarge(
                f"image {position} is {width}x{height} ({pixels:,} pixels); the limit is {MAX_IMAGE_PIXELS:,}: "
                "downscale it before sending"
            )
        total += pixels
    if total > MAX_REQUEST_PIXELS:
        raise TooLarge(f"{total:,} pixels in one request; the limit is {MAX_REQUEST_PIXELS:,}: send fewer images")


def model_fn(model_dir: str) -> BreedClassifier:
    """Rebuild the network from hyperparameters.json and load model.pth into it."""
    hyperparameters = breed_classes.read_hyperparameters(model_dir)
    labels = [c.label for c in breed_classes.read_classes(model_dir)]
    num_classes = int(hyperparameters["num_classes"])
    if len(labels) != num_classes:
        raise ValueError(f"classes.json names {len(labels)} classes but the model has {num_classes}")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    arch = hyperparameters["arch"]
    network = models.load_trained(arch, num_classes, Path(model_dir) / "model.pth")
    imagenet_head = artifacts.load_imagenet_head(model_dir)
    preset = hyperparameters.get("preset") or {}
    transform = presets.eval_transform(
        int(preset.get("resize", presets.DEFAULT_RESIZE)), int(preset.get("crop", presets.DEFAULT_CROP))
    )
    return BreedClassifier(
        network.to(device).eval(),
        transform,
        labels,
        device,
        arch=arch,
        imagenet_head=None if imagenet_head is None else imagenet_head.to(device).eval(),
        tta=str(hyperparameters.get("tta", "none")),  # models trained before TTA existed: none
    )


def input_fn(request_body: str | bytes, request_content_type: str | None) -> InferenceRequest:
    """Check the content type, unpack the images, and read their headers (no decoding yet)."""
    media, _ = _media_type(request_content_type)
    if media in RAW_IMAGE_TYPES:
        body = request_body.encode("latin-1") if isinstance(request_body, str) else bytes(request_body)
        request = InferenceRequest([body], None)
    elif media == JSON_TYPE:
        request = _from_json(request_body)
    elif media == NPY_TYPE:
        body = request_body.encode("latin-1") if isinstance(request_body, str) else bytes(request_body)
        return _from_npy(body)
    else:
        accepted = ", ".join((*RAW_IMAGE_TYPES, JSON_TYPE, NPY_TYPE))
        raise UnsupportedContentType(f"Content-Type {request_content_type or '(none)'} is not supported; send {accepted}")
    if not request.images:
        raise BadRequest('"images" is empty: send at least one image')
    _check_sizes(request.images)
    return request


def _tensor(blob: bytes | np.ndarray, position: int, transform) -> torch.Tensor:
    if isinstance(blob, np.ndarray):  # an RGB array from application/x-npy
        return transform(Image.fromarray(blob, "RGB"))
    with _open(blob, position) as image:
        try:
            image.load()
            rgb = presets.to_rgb(image)
        except (OSError, ValueError, SyntaxError) as exc:  # truncated or corrupt pixel data
            raise UndecodableImage(f"image {position} could not be decoded ({type(exc).__name__}: {exc})") from None
    return transform(rgb)


def predict_fn(input_data: InferenceRequest, model: BreedClassifier) -> Prediction:
    """Decode each image (one full-size bitmap at a time), run the network once on the batch."""
    if input_data.tensor is not None:
        batch = input_data.tensor
    else:
        batch = torch.stack([_tensor(blob, i, model.transform) for i, blob in enumerate(input_data.images)])
    probabilities, dog_probability = model(batch)
    return Prediction(probabilities, model.labels, input_data.top_k, dog_probability)


def _quality(params: dict[str, str]) -> float:
    """An Accept entry's q (RFC 9110: 0 = not acceptable; missing or unreadable = 1)."""
    try:
        q = float(params.get("q", 1))
    except ValueError:
        return 1.0
    return q if 0 <= q <= 1 else 1.0


def _negotiate(accept: str | None) -> tuple[str, dict[str, str]]:
    """The answer's type and the parameters of the Accept entry that chose it: the entry with
    the highest q this model serves (the first of equals), never a type an entry refuses with
    q=0 (`application/json;q=0, */*` is answered in JSON Lines, CSV or .npy)."""
    if not accept or not accept.strip():
        return JSON_TYPE, {}
    entries = [_media_type(entry) for entry in accept.split(",")]
    refused = {media for media, params in entries if _quality(params) == 0}
    ranked = sorted((entry for entry in entries if _quality(entry[1]) > 0), key=lambda entry: -_quality(entry[1]))
    for media, params in ranked:
        if media in ANSWER_TYPES and media not in refused:
            if ANSWER_TYPES[media] not in refused:
                return ANSWER_TYPES[media], params
            # A wildcard whose first type is refused: the next type it covers that is not.
            family = media.partition("/")[0]
            for served in (JSON_TYPE, JSONLINES_TYPE, CSV_TYPE, NPY_TYPE):
                if served not in refused and family in ("*", served.partition("/")[0]):
                    return served, params
    served = ", ".join((JSON_TYPE, JSONLINES_TYPE, CSV_TYPE, NPY_TYPE))
    raise NotAcceptable(f"Accept {accept} cannot be served; this model answers {served}")


def _response_mode(params: dict[str, str], body_top_k: int | None) -> str:
    """top_k or probabilities: the Accept header's `response`, else top_k when one was asked
    for, else DOGBREED_RESPONSE (deploy.response), else top_k."""
    if "response" in params:
        mode = params["response"].lower()
        where = "the Accept header's response"
    elif body_top_k is not None or "top_k" in params:
        return "top_k"
    else:
        mode = os.environ.get("DOGBREED_RESPONSE", DEFAULT_RESPONSE).strip().lower()
        where = "DOGBREED_RESPONSE"
    if mode not in RESPONSES:
        raise BadRequest(f"{where} must be one of {', '.join(RESPONSES)}, got {mode!r}")
    return mode


def _top(prediction: Prediction, params: dict[str, str]) -> list[list[dict]]:
    from_accept = _top_k(params["top_k"], "the Accept header's top_k") if "top_k" in params else None
    k = prediction.top_k or from_accept or _top_k(os.environ.get("DOGBREED_TOP_K", DEFAULT_TOP_K), "DOGBREED_TOP_K")
    k = min(k, prediction.probabilities.shape[1])
    values, indices = torch.topk(prediction.probabilities, k, dim=1)
    return [
        [
            {"label": prediction.labels[i], "index": i, "probability": round(p, 6)}
            for p, i in zip(row_values.tolist(), row_indices.tolist())
        ]
        for row_values, row_indices in zip(values, indices)
    ]


def _dogs(prediction: Prediction) -> list[float | None]:
    if prediction.dog_probability is None:
        return [None] * len(prediction.probabilities)
    return [round(dog, 6) for dog in prediction.dog_probability.tolist()]


def _rows(prediction: Prediction) -> list[list[float]]:
    return [[round(p, 6) for p in row] for row in prediction.probabilities.tolist()]


def _csv(prediction: Prediction) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(prediction.labels)
    writer.writerows(_rows(prediction))
    return out.getvalue()


def _npy(prediction: Prediction) -> bytes:
    out = io.BytesIO()
    np.save(out, prediction.probabilities.numpy().astype(np.float32), allow_pickle=False)
    return out.getvalue()


def output_fn(prediction: Prediction, accept: str | None) -> tuple[str | bytes, str]:
    """The answer in the first type of Accept this model serves (see the module docstring)."""
    media, params = _negotiate(accept)
    if media == NPY_TYPE:
        return _npy(prediction), NPY_TYPE
    if media == CSV_TYPE:
        return _csv(prediction), CSV_TYPE
    dogs = _dogs(prediction)
    if media == JSONLINES_TYPE:
        lines = [
            json.dumps({"probabilities": row, "top": top, "dog_probability": dog})
            for row, top, dog in zip(_rows(prediction), _top(prediction, params), dogs)
        ]
        return "".join(line + "\n" for line in lines), JSONLINES_TYPE
    if _response_mode(params, prediction.top_k) == "probabilities":
        return json.dumps(_rows(prediction)), JSON_TYPE  # the seed's shape: nothing but the list
    answer = {"predictions": [{"top": top, "dog_probability": dog} for top, dog in zip(_top(prediction, params), dogs)]}
    return json.dumps(answer), JSON_TYPE
