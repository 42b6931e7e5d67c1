"""Batch scoring on SageMaker: a Batch Transform job, which stops by itself when done.

The SageMakerBackend's transform half (it provides the SDK session, the recorder, uploads and
Describe*). Steps, each a recorded request, so `--dry-run` shows the very ones a real run sends:
1. local images are checked here (data/images.py: a corrupt, empty or oversized photo would
   fail the whole job, so it is an error row instead) and uploaded under the job's input
   prefix through the S3 dataset store (parallel, skipping what is there); an s3:// prefix
   is used as it is;
2. CreateModel from model.tar.gz, as deploy builds it (same container, same handler);
3. CreateTransformJob (aws/transform.py), tagged for this project;
4. with --wait: DescribeTransformJob until it ends (Ctrl-C stops it), then each `.out` answer
   is read back into the scores file, the same rows a local run writes; the model, needed
   only while the job runs, is deleted.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from dogbreed.aws import inventory, preflight
from dogbreed.aws import transform as batch
from dogbreed.aws.model_deployment import build_model
from dogbreed.aws.staging import StagedObject, local_file
from dogbreed.aws.tags import resource_tags
from dogbreed.backends.base import TransformOutcome, TransformRequest
from dogbreed.data.images import ImageLimits, check_image
from dogbreed.data.plan import PlannedFile
from dogbreed.data.s3store import S3Store, parse_s3_uri
from dogbreed.errors import DogbreedError, UsageError
from dogbreed.serving.batch import first_prediction, is_dog
from dogbreed.serving.scores_file import ScoresFile
from dogbreed.serving.upload import IMAGE_SUFFIXES

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
        return batch.input_uri(s3_root, request.name)

    def _check_prefix(self, uri: str) -> None:
        """Every object under the prefix is sent to the model, and one it refuses fails the
        whole job: a prefix that holds anything but photos is refused here, naming them."""
        listing = S3Store(*parse_s3_uri(uri), self.aws.client("s3")).listing()
        others = sorted(path for path in listing if "." + path.rpartition(".")[2].lower() not in IMAGE_SUFFIXES)
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

    def _checked_uploads(self, request: TransformRequest, skip: dict[str, str]) -> tuple[list[PlannedFile], dict[str, Any], list]:
        """(files to upload, {upload name: image}, error rows) for the local images not yet
        in the scores file."""
        limits = ImageLimits(
            min_side=1, max_pixels=request.config.data.max_pixels, max_bytes=request.config.transform.max_payload_mb * MB
        )
        files, names, errors = [], {}, []
        todo = [(position, item) for position, item in enumerate(request.images) if skip.get(item.image) != item.key]
        with self.reporter.task(f"Checking {len(todo)} images before the upload", total=len(todo)) as advance:
            for position, item in todo:
                self._check_one(position, item, limits, files, names, errors)
                advance(1)
        return files, names, errors

    def _check_one(self, position: int, item: Any, limits: ImageLimits, files: list, names: dict, errors: list) -> None:
        """One image: an error row, or a file to upload (appended to the lists given)."""
        if item.path is None:
            try:
                item.read()  # raises the reason this argument is no image
            except (DogbreedError, OSError) as exc:
                errors.append({"image": item.image, "key": item.key, "error": str(exc)})
            return
        checked = check_image(item.path, limits)
        if checked.problem is not None:
            hint = " (transform.max_payload_mb)" if "too large" in checked.problem else ""
            errors.append({"image": item.image, "key": item.key, "error": checked.problem + hint})
            return
        name = self._upload_name(position, item.path)
        files.append(PlannedFile(path=name, split="", folder="", source=item.path, size=checked.size, sha256=checked.sha256))
        names[name] = item

    # --- the requests

    def _transform_job(self, request: TransformRequest, dry_run: bool) -> tuple[Any, dict[str, Any], list[StagedObject], Any]:
        """(the SDK model, the CreateTransformJob request, model.tar.gz to stage, recorder)."""
        aws, session, recorder = self._sdk(dry_run)
        s3_root = aws.s3_uri()
        staged: list[StagedObject] = []
        model_uri = request.model_uri
        if not model_uri.startswith("s3://"):
            path = Path(model_uri).expanduser().resolve()
            if not path.is_file():
                raise DogbreedError(f"{model_uri}: expected a model.tar.gz (a file or an s3:// URI) to transform on SageMaker")
            staged.append(local_file(s3_root, path))
            model_uri = staged[0].uri
        model = build_model(request.config, session, model_uri=model_uri, name=request.name, role=aws.role, s3_root=s3_root)
        tags = resource_tags(request.config.sagemaker, run=request.name, kind="transform-job")
        job = batch.transform_job_request(
            request.config,
            name=request.name,
            model_name=request.name,
            input_uri=self._job_inputs(request, s3_root),
            output_uri=batch.output_uri(s3_root, request.name),
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
        cost = batch.estimate(request.config)
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
        settings = request.config.transform
        resources = (describe or {}).get("TransformResources", {})
        instance_type = resources.get("InstanceType", settings.instance_type)
        count = resources.get("InstanceCount", settings.instance_count)
        return TransformOutcome(
            name=request.name,
            backend=self.name,
            state=batch.state_of(describe) if describe else "gone",
            model_uri=request.model_uri,
            input_uri=(describe or {}).get("TransformInput", {}).get("DataSource", {}).get("S3DataSource", {}).get("S3Uri"),
            output_uri=(describe or {}).get("TransformOutput", {}).get("S3OutputPath"),
            instance_type=instance_type,
            instance_count=count,
            est_cost_per_hour=(
                self._hourly(instance_type, count) if describe and batch.state_of(describe) == "InProgress" else 0.0
            ),
            failure=(describe or {}).get("FailureReason"),
            extra={"arn": (describe or {}).get("TransformJobArn"), "model": request.name},
            **fields,
        )

    def _hourly(self, instance_type: str, count: int) -> float:
        from dogbreed.aws.pricing import hourly

        return hourly(self.config, instance_type, count) or 0.0

    def transform(
        self, request: TransformRequest, wait: bool = True, on_created: Callable[[TransformOutcome], None] | None = None
    ) -> TransformOutcome:
        if self._describe("describe_transform_job", TransformJobName=request.name) is not None:
            raise DogbreedError(
                f"transform job {request.name} already exists on SageMaker, which never reuses a name; pick another --name"
            )
        if request.config.sagemaker.preflight:
            self.preflight_transform(request)
        if request.prefixes:
            self._check_prefix(batch.as_prefix(request.prefixes[0]))
        scores = ScoresFile(request.output, request.format, request.top_k, restart=request.restart)
        done = scores.done()
        files, names, errors = self._checked_uploads(request, done)
        skipped = sum(1 for item in request.images if done.get(item.image) == item.key)
        with scores:
            scores.write_all(errors)  # refused here: the job never sees them
        if request.images and not files:
            self.reporter.info(f"{request.output}: nothing left to score")
            nothing = self._outcome(request, None, output=str(request.output), skipped=skipped, errors=_errors(errors))
            nothing.state = "Completed"  # no job was needed
            return nothing
        model, job, staged, recorder = self._transform_job(request, dry_run=False)
        self._upload(staged)
        if files:
            store = S3Store(*parse_s3_uri(job["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"]), self.aws.client("s3"))
            missing = store.missing(files, None, request.config.data.workers)
            with self.reporter.task(f"Uploading {len(missing)} images to {store.uri}", total=len(missing)) as advance:
                store.put(missing, request.config.data.workers, advance)
        self._send_transform(model, job, recorder)
        self._sent(request.name, recorder)
        started = self._outcome(request, self._describe("describe_transform_job", TransformJobName=request.name))
        self.reporter.info(
            f"transform job {request.name} started on {started.instance_type} x {started.instance_count}; "
            f"answers go to {started.output_uri}"
        )
        if on_created is not None:
            on_created(started)  # it bills from here on: record it first
        if not wait:
            started.errors = _errors(errors)
            started.skipped = skipped
            return started
        try:
            describe = batch.follow_transform_job(
                self._sagemaker, request.name, on_status=self.reporter.info, poll_seconds=self.poll_seconds
            )
        except KeyboardInterrupt:
            self.stop_transform(request.name)
            raise
        rows = self._answers(request, describe, names, done)
        with ScoresFile(request.output, request.format, request.top_k) as more:
            more.write_all(rows)
        inventory.delete(self._sagemaker, "model", request.name)  # needed only while the job ran
        return self._outcome(
            request,
            describe,
            output=str(request.output),
            scored=len(rows) + len(errors),
            skipped=skipped,
            errors=_errors(errors) + _errors(rows),
        )

    def _answers(self, request: TransformRequest, describe: dict[str, Any], names: dict[str, Any], done: dict[str, str]) -> list:
        """The scores rows from the job's `.out` objects; an image without one gets an error row
        (the job failed or stopped before it, or refused it: its logs say why)."""
        s3 = self.aws.client("s3")
        output = S3Store(*parse_s3_uri(describe["TransformOutput"]["S3OutputPath"]), s3)
        answers = output.listing()
        source = describe["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"]
        if not names:  # an s3:// prefix: the images are what it holds
            inputs = S3Store(*parse_s3_uri(source), s3)
            names = {path: (f"{inputs.uri}/{path}", f"size={size}") for path, size in sorted(inputs.listing().items())}
            names = {path: image for path, image in names.items() if done.get(image[0]) != image[1]}
        else:
            names = {path: (item.image, item.key) for path, item in names.items()}
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
        return rows

    def describe_transform(self, name: str) -> TransformOutcome:
        describe = self._describe("describe_transform_job", TransformJobName=name)
        if describe is None:
            return TransformOutcome(name=name, backend=self.name, state="gone")
        resources = describe.get("TransformResources", {})
        state = batch.state_of(describe)
        return TransformOutcome(
            name=name,
            backend=self.name,
            state=state,
            input_uri=describe.get("TransformInput", {}).get("DataSource", {}).get("S3DataSource", {}).get("S3Uri"),
            output_uri=describe.get("TransformOutput", {}).get("S3OutputPath"),
            instance_type=resources.get("InstanceType"),
            instance_count=resources.get("InstanceCount", 0),
            est_cost_per_hour=self._hourly(resources.get("InstanceType", ""), resources.get("InstanceCount", 1))
            if state == "InProgress"
            else 0.0,
            failure=describe.get("FailureReason"),
            extra={"arn": describe.get("TransformJobArn")},
        )

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
