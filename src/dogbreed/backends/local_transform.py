"""Batch scoring on the local backend: in this process, with no server, and nothing left
running afterwards (serving/batch.py scores, serving/scores_file.py writes).

Images come as the workflow listed them (files) and from s3:// prefixes, listed and read
through the backend's dataset store (the sagemaker section's credentials). The scores file
is appended image by image, so a killed run resumes where it stopped.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dogbreed.backends.base import TransformOutcome, TransformRequest
from dogbreed.errors import UsageError
from dogbreed.serving.batch import BatchImage, InProcessScorer
from dogbreed.serving.scores_file import ScoresFile
from dogbreed.serving.upload import IMAGE_SUFFIXES, fit

BACKEND = "local"
MB = 2**20


def prefix_images(store: Any, max_bytes: int, max_payload: int) -> list[BatchImage]:
    """The image objects under an S3 store's prefix, keyed by their size (a rewritten object
    of another size is scored again); read as local photos are, shrunk to max_payload."""
    found = []
    for path, size in sorted(store.listing().items()):
        if "." + path.rpartition(".")[2].lower() not in IMAGE_SUFFIXES:
            continue
        found.append(
            BatchImage(
                image=f"{store.uri}/{path}",
                key=f"size={size}",
                read=lambda path=path: fit(store.read_object(path, max_bytes, "data.max_image_bytes"), max_payload).body,
            )
        )
    return found


class LocalTransform:
    """Batch scoring for LocalBackend (which provides config, workspace and reporter)."""

    def _transform_images(self, request: TransformRequest) -> list[BatchImage]:
        images = list(request.images)
        for prefix in request.prefixes:
            if not prefix.startswith("s3://"):
                raise UsageError(f"{prefix}: expected an s3:// prefix")
            payload = request.config.transform.max_payload_mb * MB
            found = prefix_images(self.dataset_store(prefix), request.config.data.max_image_bytes, payload)
            if not found:
                self.reporter.warn(f"{prefix}: no image objects ({', '.join(sorted(IMAGE_SUFFIXES))})")
            images += found
        return list({item.image: item for item in images}.values())

    def plan_transform(self, request: TransformRequest) -> dict[str, Any]:
        return {
            "backend": BACKEND,
            "transform_job": request.name,
            "model_uri": request.model_uri,
            "output": str(request.output),
            "format": request.format,
            "top_k": request.top_k,
            "images": len(request.images),
            "prefixes": list(request.prefixes),
            "where": "in this process, no server",
            "est_cost": 0.0,
        }

    def transform(
        self, request: TransformRequest, wait: bool = True, on_created: Callable[[TransformOutcome], None] | None = None
    ) -> TransformOutcome:
        """Score every image not yet in the scores file; `wait` is moot (it runs here)."""
        images = self._transform_images(request)
        scores = ScoresFile(request.output, request.format, request.top_k, restart=request.restart)
        for note in scores.notes:
            self.reporter.warn(note)
        todo, skipped, earlier = scores.pending(images)
        outcome = TransformOutcome(
            name=request.name,
            backend=BACKEND,
            state="Completed",
            model_uri=request.model_uri,
            output=str(request.output),
            skipped=skipped,
            errors=earlier,
            instance_type="local",
            instance_count=1,
        )
        if outcome.skipped:
            self.reporter.info(f"{request.output}: {outcome.skipped} of {len(images)} images already scored; resuming")
        if not todo:
            return outcome
        workdir = self.workspace.root / "transform"
        workdir.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=f"{request.name}-", dir=workdir))
        try:
            scorer = InProcessScorer.load(
                request.model_uri,
                scratch,
                top_k=request.top_k,
                dog_threshold=request.config.deploy.dog_threshold,
                trust_code=request.trust_code,
                warn=self.reporter.warn,
            )
            with scores, self.reporter.task(f"Scoring {len(todo)} images in-process", total=len(todo)) as advance:
                for row in scorer.rows(todo):
                    scores.write(row)
                    outcome.scored += 1
                    if "error" in row:
                        outcome.errors.append({"image": row["image"], "error": row["error"]})
                    advance(1)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return outcome

    def describe_transform(self, name: str) -> TransformOutcome:
        # Local batch scoring runs inside the command that started it: never left running.
        return TransformOutcome(name=name, backend=BACKEND, state="gone")

    def stop_transform(self, name: str) -> bool:
        return False
