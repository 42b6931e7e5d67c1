"""predict: send image files to an endpoint and collect its top-k breeds per image.

Backend-agnostic: everything goes through backend.invoke. Files, folders (searched
recursively for image files) and globs are expanded here; each image is one request, sent
as raw bytes (serving/upload.py: shrunk client-side when over 6 MB or too many pixels, the
same body `transform` scores) from a bounded thread pool, with k in the Accept header so the
same request works on every server. A bad file gets its own error row
and the others go on; an endpoint that does not answer at all stops the run with one line.
"""

from __future__ import annotations

import glob
import json
from collections.abc import Sequence
from concurrent.futures import CancelledError, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dogbreed.backends.base import Backend
from dogbreed.errors import DogbreedError, NotFoundError
from dogbreed.ledger import Ledger
from dogbreed.progress import NullReporter, Reporter
from dogbreed.regular_files import FileRefusedError, check_regular
from dogbreed.serving.batch import is_dog
from dogbreed.serving.errors import EndpointUnavailableError, InvocationError
from dogbreed.serving.limits import MAX_PAYLOAD_BYTES
from dogbreed.serving.upload import IMAGE_SUFFIXES, MAX_FILE_BYTES, prepare

_GLOB_CHARS = set("*?[")


@dataclass
class PredictResult:
    endpoint: str
    backend: str
    # {"image", "top", "dog_probability", "is_dog"}: is_dog False under deploy.dog_threshold
    predictions: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, str]] = field(default_factory=list)  # {"image", "error"}

    def to_json(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "backend": self.backend,
            "predictions": self.predictions,
            "errors": self.errors,
        }


def _images_in(folder: Path) -> list[Path]:
    """Its photos, searched recursively; hidden files and folders are left out, as ingest
    leaves them out: macOS writes `._photo.jpg` (AppleDouble, no image) beside each photo
    on a shared drive or in a zip, and each became an error row."""
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file()
        and p.suffix.lower() in IMAGE_SUFFIXES
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def expand_images(arguments: Sequence[str]) -> tuple[list[Path], list[dict[str, str]]]:
    """Files as given, folders' image files, glob matches; (paths in order, error rows)."""
    paths: list[Path] = []
    errors: list[dict[str, str]] = []
    for argument in arguments:
        path = Path(argument).expanduser()
        if path.is_file():
            found = [path]
        elif path.exists() and not path.is_dir():
            # A FIFO, a device or a socket: its own row, and never opened (it could block).
            try:
                check_regular(path)
            except FileRefusedError as exc:
                errors.append({"image": argument, "error": exc.problem})
            continue
        elif path.is_dir():
            found = _images_in(path)
        elif _GLOB_CHARS & set(argument):
            found = []
            for match in sorted(glob.glob(str(path), recursive=True)):
                found += _images_in(Path(match)) if Path(match).is_dir() else [Path(match)]
        elif path.is_symlink():  # a dangling link, or a loop: "not found" hid that it is there
            errors.append(
                {"image": argument, "error": "a symbolic link whose target is missing or a loop; fix or remove the link"}
            )
            continue
        else:
            errors.append({"image": argument, "error": "file not found"})
            continue
        if not found:
            errors.append({"image": argument, "error": f"no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) match"})
        paths += found
    unique = list(dict.fromkeys(paths))
    return unique, errors


def pick_endpoint(ledger: Ledger, backend_name: str, name: str | None) -> str:
    """The named endpoint, else the newest live one of this backend in the ledger."""
    if name:
        return name
    records = ledger.list("endpoint", backend=backend_name)
    live = [record for record in records if record.live]
    if live:
        return live[-1].name
    if records:
        last = records[-1]
        raise EndpointUnavailableError(
            f"the latest endpoint, {last.name} ({backend_name}), is {last.state}; "
            f"redeploy it with `dogbreed deploy --endpoint {last.name}`"
        )
    raise NotFoundError(
        f"no endpoint on the {backend_name} backend in the ledger; run `dogbreed deploy` first, or name one with --endpoint"
    )


def _first_prediction(answer: bytes) -> dict[str, Any]:
    """{"top", "dog_probability"} of the endpoint's answer for one image; the dog probability
    is None from a model without an ImageNet head (or one served before it existed)."""
    try:
        first = json.loads(answer)["predictions"][0]
        return {"top": first["top"], "dog_probability": first.get("dog_probability")}
    except (ValueError, KeyError, IndexError, TypeError):
        raise DogbreedError(f"unexpected answer from the endpoint: {answer[:200]!r}") from None


def _check_answering(backend: Backend, name: str, since: str = "") -> None:
    info = backend.describe_endpoint(name)
    if info.state in ("gone", "failed"):
        what = "is gone (stopped, expired or never deployed)" if info.state == "gone" else f"is not answering{since}"
        raise EndpointUnavailableError(
            f"endpoint {name} ({backend.name}) {what}; redeploy it with `dogbreed deploy --endpoint {name}`"
        )


def predict(
    backend: Backend,
    ledger: Ledger,
    images: Sequence[str],
    endpoint: str | None = None,
    top_k: int = 5,
    concurrency: int = 4,
    reporter: Reporter | None = None,
    dog_threshold: float = 0.5,
    max_file_bytes: int = MAX_FILE_BYTES,
    max_payload: int = MAX_PAYLOAD_BYTES,
) -> PredictResult:
    """max_file_bytes: data.max_image_bytes; max_payload: the endpoint's limit per request."""
    reporter = reporter or NullReporter()
    name = pick_endpoint(ledger, backend.name, endpoint)
    _check_answering(backend, name)
    result = PredictResult(endpoint=name, backend=backend.name)
    paths, result.errors = expand_images(images)
    accept = f"application/json; top_k={top_k}"

    gone: list[DogbreedError] = []  # the first request that found the endpoint gone (append is atomic)

    def ask(path: Path) -> dict[str, Any]:
        upload = prepare(path, max_payload, max_file_bytes)
        try:
            answer = _first_prediction(backend.invoke(name, upload.body, upload.content_type, accept))
        except InvocationError as exc:
            if exc.error == "client_timeout":
                # No answer at all, not even the server's own 504: if it no longer answers
                # /ping (frozen, hung), every other photo would wait out the same timeout.
                _check_answering(backend, name, " any more")
            raise
        return {**answer, "is_dog": is_dog(answer["dog_probability"], dog_threshold)}

    def one(path: Path) -> dict[str, Any]:
        if gone:
            raise CancelledError  # nothing more will get through: not sent
        try:
            return ask(path)
        except (EndpointUnavailableError, NotFoundError) as exc:
            gone.append(exc)
            raise

    order = {str(path): i for i, path in enumerate(paths)}
    pool = ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(paths))))
    try:
        with reporter.task(f"Asking endpoint {name} about {len(paths)} images", total=len(paths)) as advance:
            futures = {pool.submit(one, path): path for path in paths}
            for future in as_completed(futures):
                image = str(futures[future])
                try:
                    result.predictions.append({"image": image, **future.result()})
                except (EndpointUnavailableError, NotFoundError) as exc:
                    # Nothing more will get through: send no more, but keep the answers already
                    # here (a server killed at photo 900 of 1,000 used to cost all 899).
                    for pending in futures:
                        pending.cancel()
                    result.errors.append({"image": image, "error": str(exc)})
                except CancelledError:
                    result.errors.append({"image": image, "error": f"not sent: {gone[0]}"})
                except (DogbreedError, OSError, ValueError) as exc:
                    result.errors.append({"image": image, "error": str(exc)})
                advance(1)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    if gone and not result.predictions:
        raise gone[0]  # nothing got through: the backend's one line, as when it was gone from the start
    result.predictions.sort(key=lambda row: order[row["image"]])
    result.errors.sort(key=lambda row: order.get(row["image"], -1))
    return result
