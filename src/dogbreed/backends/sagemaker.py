"""The SageMaker backend: the Backend protocol (plus tuning, status and teardown) on the
SageMaker Python SDK v2.

Every operation is built by the pure builders in dogbreed/aws (estimators, tuner, models)
and sent through one SDK session whose client records each request (aws/requests.py):
- `plan_*` uses an offline session whose client answers instead of sending, so a dry run
  returns the exact Create* requests and calls nothing at all;
- the real operation uses the same builders, so what runs is what the plan showed.
This module holds the session and training, tuning, status and teardown; its endpoints are in
sagemaker_endpoints.py and its Batch Transform in sagemaker_transform.py (the class's halves).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path
from typing import Any

from dogbreed.aws import inventory, job_output, preflight, pricing, quotas, sagemaker_names, schedules
from dogbreed.aws.client_errors import code_of, is_missing, message_of
from dogbreed.aws.describe import training_outcome, tuning_answer
from dogbreed.aws.estimators import JobInputs, build_estimator, job_hyperparameters, job_inputs
from dogbreed.aws.requests import RecordingClient
from dogbreed.aws.session import AwsSession
from dogbreed.aws.staging import StagedObject, ensure_bucket, source_bundle, upload_if_missing
from dogbreed.aws.tags import resource_tags
from dogbreed.aws.tuner import build_tuner, trial_count
from dogbreed.aws.watch import LogTail, follow_training_job, follow_tuning_job
from dogbreed.backends.base import (
    JobRecords,
    LogSink,
    TrainingOutcome,
    TrainingRequest,
    TrialsSink,
    TuningRequest,
    TuningStarted,
)
from dogbreed.backends.datasets import open_store
from dogbreed.backends.imagenet_weights import imagenet_weights_file
from dogbreed.backends.sagemaker_endpoints import SageMakerEndpoints
from dogbreed.backends.sagemaker_preflight import Rehearse, local_rehearsal, rehearse_training
from dogbreed.backends.sagemaker_transform import SageMakerTransform
from dogbreed.config import Config
from dogbreed.config.flags import hyperparameters
from dogbreed.data.stores import DatasetStore
from dogbreed.errors import ConfigError, DogbreedError, NotFoundError
from dogbreed.jobspec import metric_spec
from dogbreed.ledger import Resource
from dogbreed.progress import NullReporter, Reporter
from dogbreed.workspace import Workspace


class SageMakerBackend(SageMakerEndpoints, SageMakerTransform):
    name = "sagemaker"
    runs_here = False  # jobs run on SageMaker's instances: local files are staged to S3
    resumes_jobs = False  # SageMaker never reuses a job name (its spot jobs resume by themselves)
    # Seconds between Describe* polls while waiting; SageMaker's own states change slowly.
    poll_seconds = 15.0

    def __init__(
        self,
        config: Config,
        workspace: Workspace,
        reporter: Reporter | None = None,
        *,
        aws: AwsSession | None = None,
        rehearse: Rehearse | None = None,
    ) -> None:
        self.config = config
        self.workspace = workspace
        self.reporter = reporter or NullReporter()
        self.aws = aws or AwsSession(config.sagemaker)
        self._rehearse = rehearse
        # The exact requests the last real operation sent (CreateTrainingJob, ...).
        self.last_requests: dict[str, dict[str, Any]] = {}

    # ------------------------------------------------------------------ plumbing

    @cached_property
    def _sagemaker(self) -> Any:
        return self.aws.client("sagemaker")

    @cached_property
    def _runtime(self) -> Any:
        return self.aws.client("sagemaker-runtime")

    def _sdk(self, dry_run: bool) -> tuple[AwsSession, Any, RecordingClient]:
        """(AWS session, SDK session, recorder): offline and answering when dry."""
        if dry_run:
            aws = AwsSession(self.config.sagemaker, offline=True)
            recorder = RecordingClient(aws.client("sagemaker"), dry_run=True, account_id=aws.account_id)
        else:
            aws = self.aws
            recorder = RecordingClient(self._sagemaker, dry_run=False)
        return aws, aws.sagemaker_session(recorder), recorder

    def _sent(self, name: str, recorder: RecordingClient) -> None:
        """Keep the exact Create* requests of a real operation, in memory and on disk."""
        sent = recorder.requests().items()
        self.last_requests = {op: params for op, params in sent if op.startswith(("Create", "Update", "AddTags"))}
        folder = self.workspace.root / "sagemaker" / "requests"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{name}.json").write_text(json.dumps(self.last_requests, indent=2, default=str))

    def _upload(self, staged: list[StagedObject]) -> None:
        s3 = self.aws.client("s3")
        if not self.config.sagemaker.bucket and staged and ensure_bucket(s3, self.aws.bucket, self.aws.region):
            self.reporter.info(f"created the default bucket s3://{self.aws.bucket}")
        for item in staged:
            if upload_if_missing(s3, item, self.reporter):
                self.reporter.info(f"uploaded {item.source} to {item.uri}")

    def _send(self, what: str, action: Any) -> None:
        """Run an SDK call that sends a request; the SDK's ValueErrors are config problems."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            action()
        except ValueError as exc:
            raise ConfigError(f"{what}: the SageMaker SDK refused it: {' '.join(str(exc).split())}") from None
        except ClientError as exc:
            code, message = code_of(exc), message_of(exc)
            raise DogbreedError(f"{what}: SageMaker said {code}: {message}") from None
        except BotoCoreError as exc:
            raise DogbreedError(f"{what}: cannot reach SageMaker ({exc}); check the network and credentials") from None

    def _describe(self, method: str, **key: str) -> dict[str, Any] | None:
        """A Describe* call; None when the resource does not exist."""
        from botocore.exceptions import ClientError

        try:
            return getattr(self._sagemaker, method)(**key)
        except ClientError as exc:
            if is_missing(exc):
                return None
            code, message = code_of(exc), message_of(exc)
            raise DogbreedError(f"{method}: SageMaker said {code}: {message}") from None

    # ------------------------------------------------------------------ datasets

    def default_dataset_uri(self, name: str) -> str:
        """s3://<bucket>/<prefix>/data/<name>; the SDK's default bucket when none is set."""
        bucket = self.config.sagemaker.bucket or self._sdk_default_bucket()
        prefix = self.config.sagemaker.prefix.strip("/")
        return f"s3://{bucket}/{prefix}/data/{name}" if prefix else f"s3://{bucket}/data/{name}"

    def _sdk_default_bucket(self) -> str:
        try:
            return self.aws.sagemaker.default_bucket()
        except DogbreedError:
            raise
        except Exception as exc:  # noqa: BLE001 - the SDK raises botocore and its own errors alike
            detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise DogbreedError(
                f"cannot find the SageMaker default bucket ({detail}); set sagemaker.bucket or pass --dest s3://bucket/prefix"
            ) from exc

    def dataset_store(self, uri: str) -> DatasetStore:
        return open_store(uri, lambda: self.aws)

    # ------------------------------------------------------------------ training

    def _estimator(
        self,
        config: Any,
        dataset_uri: str,
        dry_run: bool,
        *,
        tags: list[dict[str, str]],
        instance_type: str,
        flags: dict[str, Any] | None = None,
        checkpoint_job: str | None = None,
    ) -> tuple[Any, JobInputs, StagedObject, RecordingClient]:
        """What a training job and a tuner's trials share: the source bundle and the channels
        under the bucket's root, and an estimator of train.py with the config's settings."""
        aws, session, recorder = self._sdk(dry_run)
        s3_root = aws.s3_uri()
        bundle = source_bundle(s3_root)
        inputs = job_inputs(config, dataset_uri, s3_root, self._offline_weights(config, flags))
        estimator = build_estimator(
            config,
            session,
            role=aws.role,
            code_uri=bundle.uri,
            s3_root=s3_root,
            hyperparameters=inputs.hyperparameters,
            tags=tags,
            instance_type=instance_type,
            checkpoint_job=checkpoint_job,
        )
        return estimator, inputs, bundle, recorder

    def _offline_weights(self, config: Config, flags: dict[str, Any] | None) -> dict[str, Any] | None:
        """Under sagemaker.network_isolation the job cannot download torchvision's ImageNet
        weights: the file is resolved here and staged as the weights channel instead."""
        values = dict(flags) if flags is not None else hyperparameters(config)
        if not config.sagemaker.network_isolation or str(values.get("weights")) != "imagenet":
            return flags
        values["weights"] = str(imagenet_weights_file(config.model.arch))
        return values

    def _training_job(self, request: TrainingRequest, dry_run: bool) -> tuple[Any, JobInputs, StagedObject, RecordingClient]:
        config = request.config
        flags = dict(request.hyperparameters)
        if request.max_batches:
            flags["max-batches"] = request.max_batches  # as the local backend passes it
        return self._estimator(
            config,
            request.dataset_uri,
            dry_run,
            tags=resource_tags(config.sagemaker, run=request.name, kind="training-job"),
            instance_type=config.sagemaker.instance_type.train,
            flags=flags,
            checkpoint_job=request.name,
        )

    def unrecorded_job(self, request: TrainingRequest) -> tuple[dict[str, Any], dict[str, Any]] | None:
        return None  # SageMaker keeps job names itself: CreateTrainingJob refuses one in use

    def plan_training(self, request: TrainingRequest) -> dict[str, Any]:
        """The exact CreateTrainingJob request and the cost estimate; nothing is called."""
        estimator, inputs, bundle, recorder = self._training_job(request, dry_run=True)
        self._send(f"training job {request.name}", lambda: estimator.fit(inputs.channels, wait=False, job_name=request.name))
        estimate = pricing.training_estimate(request.config)
        return {
            "backend": self.name,
            "training_job": request.name,
            "requests": recorder.requests(),
            "uploads": [item.to_json() for item in (bundle, *inputs.staged)],
            "preflight": request.config.sagemaker.preflight,
            "est_cost": estimate["estimated_usd"],
            "cost": estimate,
        }

    def preflight_training(self, request: TrainingRequest, instance_use: str = "train") -> None:
        config = request.config
        instance_type = getattr(config.sagemaker.instance_type, instance_use)
        problems = [
            *preflight.check_region(self.aws),
            *preflight.check_instance_types(self.aws, {instance_use: instance_type}),
            *preflight.check_image(config, self.aws, "training", instance_type),
            *preflight.check_role(self.aws),
            *preflight.check_bucket(self.aws),
            *preflight.check_debugger(config),
        ]
        problems += self._check_quotas(quotas.training_needs(config, instance_use))
        problems += self._check_network(config, request.hyperparameters)
        if not problems:
            self.reporter.info("pre-flight: rehearsing train.py on one batch per split, locally")
            rehearse = self._rehearse or local_rehearsal(config, self.workspace, self.reporter)
            flags = job_hyperparameters(config, request.hyperparameters)
            problems += rehearse_training(
                config, self.aws, self.workspace, request, flags, rehearse, lambda text: self.reporter.warn(f"pre-flight: {text}")
            )
        preflight.raise_if(problems, self.reporter, f"training job {request.name}")

    def _check_network(self, config: Config, flags: dict[str, Any]) -> list[str]:
        """A job without internet must get everything it would download from here; today
        that is torchvision's ImageNet weights. A warning says where they come from; a host
        that cannot fetch them either is a problem."""
        if not config.sagemaker.network_isolation or str(flags.get("weights")) != "imagenet":
            return []
        try:
            found = imagenet_weights_file(config.model.arch)
        except DogbreedError as exc:
            return [str(exc)]
        self.reporter.warn(
            f"pre-flight: sagemaker.network_isolation=true: the job has no internet, so the ImageNet weights of "
            f"{config.model.arch} go from this machine ({found}) to S3 once, as the weights channel"
        )
        return []

    def _check_quotas(self, needs: list[quotas.QuotaNeed]) -> list[str]:
        """Shortfalls as problems; quotas that cannot be read as warnings (the check is a hint)."""
        checked = quotas.check_quotas(self.aws.client("service-quotas"), needs, self.aws.region)
        for warning in checked.warnings:
            self.reporter.warn(f"pre-flight: {warning}")
        return checked.problems

    def _follow_existing(self, what: str, name: str, state: str | None, hint: str = "") -> bool:
        """True when a job of this name already runs or ran to completion: follow it instead of
        starting one. A job that ended otherwise is refused: SageMaker never reuses a name."""
        if state is None:
            return False
        if state in ("InProgress", "Stopping", "Completed"):
            self.reporter.info(f"{what} {name} already exists on SageMaker ({state}); following it")
            return True
        raise DogbreedError(
            f"{what} {name} ended {state} on SageMaker, and SageMaker never reuses a job name; "
            f"start a new one with --name NEW_NAME{hint}"
        )

    def start_training(self, request: TrainingRequest) -> None:
        existing = self._describe("describe_training_job", TrainingJobName=request.name)
        if self._follow_existing("training job", request.name, existing["TrainingJobStatus"] if existing else None):
            return
        if request.config.sagemaker.preflight:
            self.preflight_training(request)
        estimator, inputs, bundle, recorder = self._training_job(request, dry_run=False)
        self._upload([bundle, *inputs.staged])
        self._send(f"training job {request.name}", lambda: estimator.fit(inputs.channels, wait=False, job_name=request.name))
        self._sent(request.name, recorder)
        self.reporter.info(f"training job {request.name} started on {request.config.sagemaker.instance_type.train}")

    def describe_training(self, name: str) -> TrainingOutcome:
        describe = self._describe("describe_training_job", TrainingJobName=name)
        if describe is None:
            raise NotFoundError(f"training job {name} not found on SageMaker in {self.aws.region}")
        return TrainingOutcome(**training_outcome(describe, self.aws.region))

    def wait_training(self, name: str, on_log: LogSink | None = None) -> TrainingOutcome:
        """Stream the job's CloudWatch logs and status until it ends. Ctrl-C stops the job."""
        if self._describe("describe_training_job", TrainingJobName=name) is None:
            raise NotFoundError(f"training job {name} not found on SageMaker in {self.aws.region}")
        spec = metric_spec()
        history: list[dict[str, float]] = []

        def line(text: str) -> None:
            found = spec.parse_line(text)
            if spec.epoch_key in found:
                history.append(found)
            if on_log:
                on_log(text)

        try:
            describe = follow_training_job(
                self._sagemaker,
                LogTail(self.aws.client("logs"), name),
                name,
                on_log=line,
                on_status=self.reporter.info,
                poll_seconds=self.poll_seconds,
            )
        except KeyboardInterrupt:
            self.stop_training(name)
            raise
        return TrainingOutcome(**training_outcome(describe, self.aws.region, history))

    def job_records(self, job: Resource, dest: Path) -> JobRecords:
        """records.jsonl from the job's output.tar.gz, and Debugger's and the ProfilerReport's
        verdicts, downloaded into dest."""
        found = job_output.fetch(self.aws, job.name, dest, job.meta.get("output_uri"))
        if found.records is None and not found.debugger_rules:
            detail = "; ".join(found.notes) or "nothing found"
            raise DogbreedError(f"SageMaker training job {job.name} has no records and no Debugger results yet: {detail}")
        links = [("Debugger ProfilerReport", found.profiler_report.name)] if found.profiler_report else []
        return JobRecords(found.records, found.output_uri, found.debugger_rules, links, found.notes, found.status)

    def stop_training(self, name: str) -> None:
        self.reporter.warn(f"stopping training job {name} on SageMaker")
        self._sagemaker.stop_training_job(TrainingJobName=name)

    # ------------------------------------------------------------------ tuning

    def _tuning_job(self, request: TuningRequest, dry_run: bool) -> tuple[Any, JobInputs, StagedObject, RecordingClient]:
        config = request.config
        tags = resource_tags(config.sagemaker, run=sagemaker_names.tuning_job_name(request.name), kind="tuning-job")
        estimator, inputs, bundle, recorder = self._estimator(
            config, request.dataset_uri, dry_run, tags=tags, instance_type=config.sagemaker.instance_type.tune
        )
        return build_tuner(config, estimator, tags=tags), inputs, bundle, recorder

    def _fit_tuner(self, tuner: Any, inputs: JobInputs, name: str) -> None:
        self._send(
            f"tuning job {name}",
            lambda: tuner.fit(inputs.channels, job_name=name, include_cls_metadata=False, wait=False),
        )

    def plan_tuning(self, request: TuningRequest) -> dict[str, Any]:
        """The exact CreateHyperParameterTuningJob request and the cost estimate; nothing is called."""
        tuner, inputs, bundle, recorder = self._tuning_job(request, dry_run=True)
        self._fit_tuner(tuner, inputs, request.name)
        jobs = trial_count(request.config)
        estimate = pricing.tuning_estimate(request.config, jobs)
        return {
            "backend": self.name,
            "tuning_job": request.name,
            "strategy": request.config.tune.strategy,
            "trials": jobs,
            "requests": recorder.requests(),
            "uploads": [item.to_json() for item in (bundle, *inputs.staged)],
            "preflight": request.config.sagemaker.preflight,
            "est_cost": estimate["estimated_usd"],
            "cost": estimate,
        }

    def start_tuning(self, request: TuningRequest, wait: bool = True) -> TuningStarted:
        """Create the tuning job (or follow one of this name); it runs on SageMaker either way."""
        name = sagemaker_names.tuning_job_name(request.name)
        existing = self._describe("describe_hyper_parameter_tuning_job", HyperParameterTuningJobName=name)
        state = existing["HyperParameterTuningJobStatus"] if existing else None
        if self._follow_existing("tuning job", name, state, " (tune.warm_start_from can build on it)"):
            return TuningStarted()
        if request.config.sagemaker.preflight:
            # Trials differ only in the tuned values: rehearse with the config's own.
            rehearsal = TrainingRequest(
                name=name,
                config=request.config,
                dataset_uri=request.dataset_uri,
                hyperparameters=hyperparameters(request.config),
                manifest_sha256=request.manifest_sha256,
            )
            self.preflight_training(rehearsal, instance_use="tune")
        tuner, inputs, bundle, recorder = self._tuning_job(request, dry_run=False)
        self._upload([bundle, *inputs.staged])
        self._fit_tuner(tuner, inputs, name)
        self._sent(name, recorder)
        self.reporter.info(f"tuning job {name} started: {trial_count(request.config)} trials")
        return TuningStarted()

    def describe_tuning(self, name: str) -> dict[str, Any]:
        describe = self._describe("describe_hyper_parameter_tuning_job", HyperParameterTuningJobName=name)
        if describe is None:
            raise NotFoundError(f"tuning job {name} not found on SageMaker in {self.aws.region}")
        return self._tuning_answer(describe)

    def _tuning_answer(self, describe: dict[str, Any]) -> dict[str, Any]:
        name = describe["HyperParameterTuningJobName"]
        pages = self._sagemaker.get_paginator("list_training_jobs_for_hyper_parameter_tuning_job").paginate(
            HyperParameterTuningJobName=name
        )
        summaries = [s for page in pages for s in page.get("TrainingJobSummaries", [])]
        return tuning_answer(describe, summaries)

    def wait_tuning(self, request: TuningRequest, on_trials: TrialsSink | None = None) -> dict[str, Any]:
        """Follow the tuning job's trial counters until it ends; the tune answer. Ctrl-C stops it.
        Progress goes to the reporter as status lines (on_trials is the local engine's)."""
        name = sagemaker_names.tuning_job_name(request.name)
        if self._describe("describe_hyper_parameter_tuning_job", HyperParameterTuningJobName=name) is None:
            raise NotFoundError(f"tuning job {name} not found on SageMaker in {self.aws.region}")
        try:
            describe = follow_tuning_job(self._sagemaker, name, on_status=self.reporter.info, poll_seconds=self.poll_seconds)
        except KeyboardInterrupt:
            self.reporter.warn(f"stopping tuning job {name} on SageMaker")
            self._sagemaker.stop_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
            raise
        return self._tuning_answer(describe)

    # ------------------------------------------------------------------ status and teardown

    def list_resources(self) -> list[dict[str, Any]]:
        """What this project has on SageMaker now, found by its tags: the `status` rows."""
        rows = []
        for found in inventory.tagged(self._sagemaker, self.config.sagemaker):
            state, per_hour = found.state, 0.0
            if found.kind == "endpoint":
                info = self.describe_endpoint(found.name)
                state, per_hour = info.state, info.est_cost_per_hour
            elif found.kind in ("training-job", "tuning-job", "transform-job"):
                per_hour = inventory.job_hourly_cost(self._sagemaker, self.config, found)
            rows.append(inventory.status_row(found, state, per_hour))
        rows += [self._schedule_row(schedule) for schedule in self._schedules()]
        return rows

    def _schedules(self) -> list[dict[str, Any]]:
        return self._scheduler_call(
            "schedules", lambda client: schedules.project_schedules(client, self.config.sagemaker), denied=[]
        )

    def _schedule_row(self, schedule: dict[str, Any]) -> dict[str, Any]:
        """A `status` row: the schedule that deletes an endpoint at its TTL; it costs nothing."""
        created, expires = schedule.get("CreationDate"), schedules.expiry_of(schedule)
        moment = datetime.now(timezone.utc)
        return {
            "kind": "schedule",
            "name": schedule["Name"],
            "backend": self.name,
            "created_at": created.isoformat() if created else None,
            "expires_at": expires,
            "age_s": int((moment - created).total_seconds()) if created else None,
            "expires_in_s": int((datetime.fromisoformat(expires) - moment).total_seconds()) if expires else None,
            "state": schedule.get("State", "ENABLED"),
            "est_cost_per_hour": 0.0,
            "arn": schedule.get("Arn"),
            "run": schedules.endpoint_of(schedule["Name"]),
            "deletes": f"endpoint/{schedules.endpoint_of(schedule['Name'])}",
        }

    def teardown(self, names: list[str] | None = None, dry_run: bool = False) -> dict[str, list[str]]:
        """Delete this project's models, endpoint configs and endpoints: all those tagged for
        it, or those of the named endpoints. Items are 'kind/name'; a dry run deletes nothing."""
        targets, not_found = inventory.teardown_targets(self._sagemaker, self.config.sagemaker, names)
        deleted = []
        for kind, name in targets:
            if dry_run or inventory.delete(self._sagemaker, kind, name):
                deleted.append(f"{kind}/{name}")
            else:
                not_found.append(f"{kind}/{name}")
        # Schedules whose endpoint is gone (or named): nothing left for them to delete.
        gone = {name for kind, name in targets if kind == "endpoint"}
        for schedule in self._schedules():
            endpoint = schedules.endpoint_of(schedule["Name"])
            if names and endpoint not in names:
                continue
            if endpoint in gone or self._describe("describe_endpoint", EndpointName=endpoint) is None:
                if dry_run or self._scheduler_call(
                    "schedule", lambda client, e=endpoint: schedules.delete_schedule(client, self.config.sagemaker, e)
                ):
                    deleted.append(f"schedule/{schedule['Name']}")
        return {"deleted": deleted, "not_found": not_found}
