"""Batch scoring on SageMaker: a Batch Transform job, which stops by itself when done.

The SageMakerBackend's transform half (it provides the SDK session, the recorder, uploads and
Describe*). Steps, each a recorded request, so `--dry-run` shows the very ones a real run sends:
1. local images become the body `predict` would send (serving/upload.py: one over
   transform.max_payload_mb, or over the handler's pixels, is shrunk as predict shrinks it),
   which is checked here (data/images.py: a corrupt or empty photo would fail the whole job,
   so it is an error row instead, as is one that cannot be shrunk) and uploaded under the
   job's input prefix through the S3 dataset store (parallel, skipping what is there); an
   s3:// prefix is used as it is;
2. CreateModel from model.tar.gz, as deploy builds it (same container, same handler; a
   local archive's code/ vouched for as deploy's is, before anything is sent);
3. CreateTransformJob (aws/transform.py), tagged for this project;
4. with --wait: DescribeTransformJob until it ends (Ctrl-C stops it), then each `.out` answer
   is read back into the scores file, the same rows a local run writes; the model, needed
   only while the job runs, is deleted.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dogbreed.aws import inventory, preflight, pricing, sagemaker_names
from dogbreed.aws import transform as batch
from dogbreed.aws.model_deployment import build_model
from dogbreed.aws.staging import StagedObject, model_archive
from dogbreed.aws.tags import resource_tags
from dogbreed.aws.watch import follow_transform_job
from dogbreed.backends.base import TransformOutcome, TransformRequest
from dogbreed.data.images import ImageLimits, check_image_bytes
from dogbreed.data.plan import PlannedFile
from dogbreed.data.s3store import S3Store
from dogbreed.errors import DogbreedError, UsageError
from dogbreed.serving.batch import first_prediction, is_dog
from dogbreed.serving.scores_file import ScoresFile
from dogbreed.serving.upload import SERVED_SUFFIXES, prepare

MB = 2**20


class SageMakerTransform:
    """Batch Transform for SageMakerBackend (see the module docstring)."""

    # --- what the job reads

    def _job_inputs(self, request: TransformRequest, s3_root: str) -> str:
        """The job's S3 input prefix: the one s3:// prefix given, or the upload prefix."""
        if request.prefixes and request.images:
            raise UsageError(
                "a SageMaker transform job reads one S3 prefix: give either s3:// prefixes or local images, not both"
            )
        if len(request.prefixes) > 1:
            raise UsageError(
                f"a SageMaker transform job reads one S3 prefix; got {len(request.prefixes)}: run one job per prefix"
            )
        if request.prefixes:
            return batch.as_prefix(request.prefixes[0])
        if not request.images:
            raise UsageError("no images to score")
        return sagemaker_names.transform_input_uri(s3_root, request.name)

    def _check_prefix(self, uri: str) -> None:
        """Every object under the prefix is sent to the model, and one it refuses fails the
        whole job: a prefix that holds anything but photos is refused here, naming them."""
        listing = S3Store.from_uri(uri, self.aws).listing()
        others = sorted(path for path in listing if "." + path.rpartition(".")[2].lower() not in SERVED_SUFFIXES)
        if not listing:
            raise UsageError(f"{uri} holds no objects; give the prefix of the photos to score")
        if others:
            shown = ", ".join(others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
            raise UsageError(
                f"{uri} holds {len(others)} object(s) that are not photos ({shown}); a transform job fails on the "
                "first one the model refuses: move them, or give a prefix that holds only photos"
            )

    @staticmethod
    def _upload_name(position: int, path: Path) -> str:
        # Numbered, so two photos called 1.jpg in different folders stay apart.
        return f"{position:06d}-{path.name}"

    def _checked_uploads(
        self, request: TransformRequest, todo: list[Any], scratch: Path
    ) -> tuple[list[PlannedFile], dict[str, Any], list]:
        """(files to upload, {upload name: image}, error rows) for the local images not yet
        in the scores file (`todo`); shrunk bodies are written under `scratch` to upload."""
        limits = ImageLimits(min_side=1, max_pixels=request.config.data.max_pixels)
        files, names, errors = [], {}, []
        wanted = {id(item) for item in todo}
        numbered = [(position, item) for position, item in enumerate(request.images) if id(item) in wanted]
        with self.reporter.task(f"Checking {len(numbered)} images before the upload", total=len(numbered)) as advance:
            for position, item in numbered:
                row = self._check_one(request, position, item, limits, scratch, files, names)
                if row is not None:
                    errors.append(row)
                advance(1)
        return files, names, errors

    def _check_one(
        self, request: TransformRequest, position: int, item: Any, limits: ImageLimits, scratch: Path, files: list, names: dict
    ) -> dict[str, str] | None:
        """One image: its error row, or None with a file to upload appended to `files`."""
        if item.path is None:
            try:
                item.read()  # raises the reason this argument is no image
            except (DogbreedError, OSError) as exc:
                return {"image": item.image, "key": item.key, "error": str(exc)}
            return None
        config = request.config
        try:
            # The body predict would send for this photo: the same shrinking, the same bytes.
            upload = prepare(item.path, config.transform.max_payload_mb * MB, config.data.max_image_bytes)
        except (DogbreedError, OSError, ValueError) as exc:
            return {"image": item.image, "key": item.key, "error": getattr(exc, "problem", None) or str(exc)}
        checked = check_image_bytes(upload.body, item.image, limits)
        if checked.problem is not None:
            return {"image": item.image, "key": item.key, "error": checked.problem}
        name = self._upload_name(position, item.path)
        source = item.path
        if upload.shrunk:  # a JPEG or PNG made here: the job reads it, not the original
            source = scratch / name
            source.write_bytes(upload.body)
        files.append(PlannedFile(path=name, split="", folder="", source=source, size=checked.size, sha256=checked.sha256))
        names[name] = item
        return None

    # --- the requests

    def _transform_job(self, request: TransformRequest, dry_run: bool) -> tuple[Any, dict[str, Any], list[StagedObject], Any]:
        """(the SDK model, the CreateTransformJob request, model.tar.gz to stage, recorder)."""
        aws, session, recorder = self._sdk(dry_run)
        s3_root = aws.s3_uri()
        model_uri, staged = model_archive(s3_root, request.model_uri, "transform")
        # The rows are read from the top_k answer; deploy.response=probabilities (the seed's
        # bare lists, for endpoints) must not change what this job's model answers.
        config = request.config.model_copy(update={"deploy": request.config.deploy.model_copy(update={"response": "top_k"})})
        model = build_model(config, session, model_uri=model_uri, name=request.name, role=aws.role, s3_root=s3_root)
        tags = resource_tags(request.config.sagemaker, run=request.name, kind="transform-job")
        job = batch.transform_job_request(
            request.config,
            name=request.name,
            model_name=request.name,
            input_uri=self._job_inputs(request, s3_root),
            output_uri=sagemaker_names.transform_output_uri(s3_root, request.name),
            tags=tags,
        )
        return model, job, staged, recorder

    def _send_transform(self, model: Any, job: dict[str, Any], recorder: Any) -> None:
        tags = job["Tags"]
        self._send(
            f"model {model.name}", lambda: model.create(instance_type=job["TransformResources"]["InstanceType"], tags=tags)
        )
        self._send(f"transform job {job['TransformJobName']}", lambda: recorder.create_transform_job(**job))

    def plan_transform(self, request: TransformRequest) -> dict[str, Any]:
        """The exact CreateModel and CreateTransformJob requests and the cost; nothing is called."""
        model, job, staged, recorder = self._transform_job(request, dry_run=True)
        self._send_transform(model, job, recorder)
        cost = pricing.transform_estimate(request.config)
        uploads = [item.to_json() for item in staged]
        if request.images:
            uploads.append({"images": len(request.images), "to": job["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"]})
        return {
            "backend": self.name,
            "transform_job": request.name,
            "model_uri": request.model_uri,
            "output": str(request.output),
            "format": request.format,
            "requests": recorder.requests(),
            "uploads": uploads,
            "est_cost": cost["estimated_usd"],
            "cost": cost,
        }

    # --- running it

    def preflight_transform(self, request: TransformRequest) -> None:
        """What would fail minutes into the job, checked first: region, instance type, the
        inference container, the role, the bucket (when something is uploaded)."""
        instance_type = request.config.transform.instance_type
        problems = [
            *preflight.check_region(self.aws),
            *preflight.check_instance_types(self.aws, {"transform": instance_type}),
            *preflight.check_image(request.config, self.aws, "inference", instance_type),
            *preflight.check_role(self.aws),
        ]
        if request.images or not request.model_uri.startswith("s3://"):
            problems += preflight.check_bucket(self.aws)
        preflight.raise_if(problems, self.reporter, f"transform job {request.name}")

    def _outcome(self, request: TransformRequest, describe: dict[str, Any] | None, **fields: Any) -> TransformOutcome:
        """The outcome of this request's job as SageMaker describes it (none yet: as configured)."""
        settings = request.config.transform
        outcome = self.describe_transform(request.name, describe) if describe else None
        if outcome is None:
            outcome = TransformOutcome(
                request.name, self.name, "gone", instance_type=settings.instance_type, instance_count=settings.instance_count
            )
        outcome.model_uri = request.model_uri
        outcome.extra["model"] = request.name
        for key, value in fields.items():
            setattr(outcome, key, value)
        return outcome

    def transform(
        self, request: TransformRequest, wait: bool = True, on_created: Callable[[TransformOutcome], None] | None = None
    ) -> TransformOutcome:
        existing = self._describe("describe_transform_job", TransformJobName=request.name)
        if existing is not None:
            # SageMaker never reuses a name: this is the job started earlier (--no-wait, or a
            # run cut short), so follow it and read its answers instead of starting one.
            self.reporter.info(f"transform job {request.name} already exists ({batch.state_of(existing)}); following it")
        else:
            self._check_code(request.model_uri, request.trust_code, "scoring with")  # as deploy does
            if request.config.sagemaker.preflight:
                self.preflight_transform(request)
        if request.prefixes and existing is None:
            self._check_prefix(batch.as_prefix(request.prefixes[0]))
        scores = ScoresFile(request.output, request.format, request.top_k, restart=request.restart)
        for note in scores.notes:
            self.reporter.warn(note)
        done = scores.done()
        todo, skipped, earlier = scores.pending(request.images)
        workdir = self.workspace.root / "transform"
        workdir.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=f"{request.name}-", dir=workdir))
        try:  # shrunk photos live in scratch until they are uploaded
            files, names, errors = self._checked_uploads(request, todo, scratch)
            with scores:
                scores.write_all(errors)  # refused here: the job never sees them
            if request.images and not files and existing is None:
                self.reporter.info(f"{request.output}: nothing left to score")
                nothing = self._outcome(
                    request, None, output=str(request.output), skipped=skipped, errors=earlier + _errors(errors)
                )
                nothing.state = "Completed"  # no job was needed
                return nothing
            if existing is None:
                self._start_transform(request, files)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        started = self._outcome(request, self._describe("describe_transform_job", TransformJobName=request.name))
        if existing is None:
            self.reporter.info(
                f"transform job {request.name} started on {started.instance_type} x {started.instance_count}; "
                f"answers go to {started.output_uri}"
            )
        if on_created is not None:
            on_created(started)  # it bills from here on: record it first
        if not wait:
            started.errors = earlier + _errors(errors)
            started.skipped = skipped
            return started
        try:
            describe = follow_transform_job(
                self._sagemaker, request.name, on_status=self.reporter.info, poll_seconds=self.poll_seconds
            )
        except KeyboardInterrupt:
            self.stop_transform(request.name)
            raise
        rows, already = self._answers(request, describe, names, done)
        with ScoresFile(request.output, request.format, request.top_k) as more:
            more.write_all(rows)
        inventory.delete(self._sagemaker, "model", request.name)  # needed only while the job ran
        return self._outcome(
            request,
            describe,
            output=str(request.output),
            scored=len(rows) + len(errors),
            skipped=skipped + already,
            errors=earlier + _errors(errors) + _errors(rows),
        )

    def _start_transform(self, request: TransformRequest, files: list[PlannedFile]) -> None:
        """Upload what the job reads, then CreateModel and CreateTransformJob."""
        model, job, staged, recorder = self._transform_job(request, dry_run=False)
        self._upload(staged)
        if files:
            store = S3Store.from_uri(job["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"], self.aws)
            missing = store.missing(files, None, request.config.data.workers)
            with self.reporter.task(f"Uploading {len(missing)} images to {store.uri}", total=len(missing)) as advance:
                store.put(missing, request.config.data.workers, advance)
        self._send_transform(model, job, recorder)
        self._sent(request.name, recorder)

    def _answers(
        self, request: TransformRequest, describe: dict[str, Any], names: dict[str, Any], done: dict[str, str]
    ) -> tuple[list[dict[str, Any]], int]:
        """(the scores rows from the job's `.out` objects, how many images of an s3:// prefix
        the scores file already had). An image without an answer gets an error row (the job
        failed or stopped before it, or the model refused it: the job's logs say why)."""
        output = S3Store.from_uri(describe["TransformOutput"]["S3OutputPath"], self.aws)
        answers = output.listing()
        source = describe["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"]
        if request.prefixes:  # the images are what the prefix holds
            inputs = S3Store.from_uri(source, self.aws)
            listed = {path: (f"{inputs.uri}/{path}", f"size={size}") for path, size in sorted(inputs.listing().items())}
            names = {path: image for path, image in listed.items() if done.get(image[0]) != image[1]}
            already = len(listed) - len(names)
        else:
            names = {path: (item.image, item.key) for path, item in names.items()}
            already = 0
        threshold = request.config.deploy.dog_threshold
        reason = describe.get("FailureReason") or f"the job ended {batch.state_of(describe)}"
        rows = []
        for path, (image, key) in names.items():
            answer = path + batch.OUTPUT_SUFFIX
            if answer not in answers:
                rows.append(
                    {
                        "image": image,
                        "key": key,
                        "error": f"no answer from transform job {request.name} ({reason}); see its CloudWatch logs",
                    }
                )
                continue
            try:
                found = first_prediction(output.read_object(answer, 6 * MB))
            except DogbreedError as exc:
                rows.append({"image": image, "key": key, "error": str(exc)})
                continue
            rows.append({"image": image, "key": key, **found, "is_dog": is_dog(found["dog_probability"], threshold)})
        return rows, already

    def describe_transform(self, name: str, describe: dict[str, Any] | None = None) -> TransformOutcome:
        """The job as SageMaker sees it now (or as `describe` says); state "gone" when unknown."""
        describe = describe or self._describe("describe_transform_job", TransformJobName=name)
        if describe is None:
            return TransformOutcome(name=name, backend=self.name, state="gone")
        outcome = TransformOutcome(name=name, backend=self.name, **batch.described(describe))
        if outcome.state == "InProgress":  # it bills while it runs, and only then
            outcome.est_cost_per_hour = pricing.jobs_hourly(self.config, outcome.instance_type or "", outcome.instance_count, 1)
        return outcome

    def stop_transform(self, name: str) -> bool:
        """Stop a running transform job; False when it is not running (ended, or unknown)."""
        describe = self._describe("describe_transform_job", TransformJobName=name)
        if describe is None or batch.state_of(describe) != "InProgress":
            return False
        self.reporter.warn(f"stopping transform job {name} on SageMaker")
        self._sagemaker.stop_transform_job(TransformJobName=name)
        return True


def _errors(rows: list[dict[str, Any]]) -> list[dict[str, str]]:
    return [{"image": row["image"], "error": row["error"]} for row in rows if "error" in row]
