"""Batch scoring in this process, with no server: the endpoint's own handler, called directly.

The model is loaded the way the local endpoint loads it (serving/model_archive.py for the
archive, serving/handler_code.py for whose code it is, ModelHandler for the four hooks), and
each image goes through ModelHandler.invoke with the very body and Accept header `predict`
sends to an endpoint, so a batch answer is the endpoint's answer for the same photo, to the
digit. What the handler refuses (an undecodable or oversized image, 4xx) is that image's
error row; the next image goes on.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dogbreed.errors import DogbreedError
from dogbreed.serving.handler_code import check_handler_code
from dogbreed.serving.model_archive import prepare_model_dir
from dogbreed.serving.model_handler import ModelHandler
from dogbreed.serving.upload import sniff_content_type


@dataclass(frozen=True)
class BatchImage:
    """One image to score: how it is shown (`image`: a path or an s3:// URI), what it was when
    listed (`key`: size and mtime, or an object's size; a rerun skips an image whose row has
    the same key), and how to read its bytes (refusing what is not a photo-sized file)."""

    image: str
    key: str
    read: Callable[[], bytes]
    path: Path | None = None  # the local file, when it is one (a SageMaker job uploads it)


READ_AHEAD = 4


class ScoringError(DogbreedError):
    """The handler refused one image: its row's error."""


def first_prediction(answer: bytes) -> dict[str, Any]:
    """{"top", "dog_probability"} of a top_k answer for one image (the endpoint's JSON)."""
    try:
        first = json.loads(answer)["predictions"][0]
        return {"top": first["top"], "dog_probability": first.get("dog_probability")}
    except (ValueError, KeyError, IndexError, TypeError):
        raise DogbreedError(f"unexpected answer from the model: {answer[:200]!r}") from None


def is_dog(dog_probability: float | None, threshold: float) -> bool | None:
    """Whether to name a breed: None when the model cannot tell (no ImageNet head)."""
    return None if dog_probability is None else dog_probability >= threshold


class InProcessScorer:
    """A model loaded in this process, answering one image at a time as an endpoint would."""

    def __init__(self, handler: ModelHandler, top_k: int, dog_threshold: float) -> None:
        self.handler = handler
        self.accept = f"application/json; top_k={top_k}"  # what predict sends
        self.dog_threshold = dog_threshold

    @classmethod
    def load(
        cls, model_uri: str, workdir: Path, *, top_k: int, dog_threshold: float, trust_code: bool = False, warn=None
    ) -> InProcessScorer:
        """The model behind a model.tar.gz or model dir; foreign handler code needs trust_code,
        as deploy does, since loading the model runs its code/inference.py here."""
        model_dir = prepare_model_dir(model_uri, workdir / "model")
        foreign = check_handler_code(model_dir, model_uri, trust_code)
        if foreign and warn is not None:
            warn(f"--trust-code: scoring with the model's own code ({'; '.join(foreign[:3])})")
        try:
            handler = ModelHandler.load(model_dir)
        except Exception as exc:  # noqa: BLE001 - the model's own loading code: one line, whatever it raised
            raise DogbreedError(f"cannot load model {model_uri}: {type(exc).__name__}: {exc}") from None
        return cls(handler, top_k, dog_threshold)

    def score(self, body: bytes) -> dict[str, Any]:
        """{"top", "dog_probability", "is_dog"} for one image's bytes; ScoringError if refused."""
        reply = self.handler.invoke(body, sniff_content_type(body[:16]), self.accept)
        if reply.status != 200:
            try:
                detail = json.loads(reply.body).get("detail") or reply.body.decode(errors="replace")
            except ValueError:
                detail = reply.body.decode(errors="replace")
            # The handler numbers the images of a request; a batch request holds just this one.
            raise ScoringError(str(detail).replace("image 0 ", "the image ", 1))
        answer = first_prediction(reply.body)
        return {**answer, "is_dog": is_dog(answer["dog_probability"], self.dog_threshold)}

    def row(self, item: BatchImage, body: Callable[[], bytes] | None = None) -> dict[str, Any]:
        """The scores file's row for one image: its scores, or its error; never raises for
        a bad image. `body` gives its bytes when they were read ahead."""
        try:
            return {"image": item.image, "key": item.key, **self.score((body or item.read)())}
        except (DogbreedError, OSError, ValueError) as exc:
            return {"image": item.image, "key": item.key, "error": getattr(exc, "problem", None) or str(exc)}

    def rows(self, items: Sequence[BatchImage], readers: int = READ_AHEAD) -> Iterator[dict[str, Any]]:
        """Rows in the order of `items`. The next few images are read on threads while one is
        scored: an S3 object's round trip (tens of ms) then overlaps the model's work instead
        of adding to it. At most `readers` images are held ahead."""
        pool = ThreadPoolExecutor(max_workers=readers, thread_name_prefix="dogbreed-read")
        ahead: deque = deque()
        try:
            pending = iter(items)
            for item in pending:
                ahead.append((item, pool.submit(item.read)))
                if len(ahead) >= readers:
                    break
            while ahead:
                item, future = ahead.popleft()
                following = next(pending, None)
                if following is not None:
                    ahead.append((following, pool.submit(following.read)))
                yield self.row(item, future.result)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
