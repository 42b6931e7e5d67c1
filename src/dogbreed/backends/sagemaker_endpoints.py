"""Real-time endpoints on SageMaker: deploy (a new endpoint, or an existing one updated in
place), its TTL enforced by EventBridge Scheduler, invoke, describe and delete.

The SageMakerBackend's serving half (it provides the SDK session, the recorder, uploads,
Describe* and the quota check), as sagemaker_transform.py is its Batch Transform half.
A new endpoint is CreateModel, CreateEndpointConfig and CreateEndpoint (PyTorchModel.deploy);
a redeploy over a live one is CreateModel, CreateEndpointConfig and UpdateEndpoint, and the
old model and config are deleted only once the new one is InService (a failed update deletes
the new ones instead, and the old keep serving). Every local model.tar.gz has its code/
checked against this dogbreed's handler before any request (`--trust-code` to serve another).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from dogbreed.aws import inventory, preflight, pricing, quotas, sagemaker_names, schedules
from dogbreed.aws.client_errors import code_of, message_of
from dogbreed.aws.describe import endpoint_info
from dogbreed.aws.model_deployment import build_model, deploy_arguments, send_endpoint_update
from dogbreed.aws.requests import RecordingClient
from dogbreed.aws.staging import StagedObject, model_archive
from dogbreed.aws.tags import EXPIRES_AT, as_dict, resource_tags
from dogbreed.aws.watch import follow_endpoint
from dogbreed.backends.base import DeployRequest, EndpointInfo
from dogbreed.errors import DogbreedError, NotFoundError
from dogbreed.regular_files import FileRefusedError, open_regular
from dogbreed.serving.handler_code import check_archive_code


class SageMakerEndpoints:
    """Endpoints for SageMakerBackend (see the module docstring)."""

    def _deployment(
        self, request: DeployRequest, dry_run: bool
    ) -> tuple[Any, dict[str, Any], list[StagedObject], RecordingClient]:
        aws, session, recorder = self._sdk(dry_run)
        config = request.config
        s3_root = aws.s3_uri()
        model_uri, staged = model_archive(s3_root, request.model_uri, "deploy")
        model = build_model(
            config,
            session,
            model_uri=model_uri,
            name=sagemaker_names.model_name(request.endpoint_name, model_uri, request.expires_at),
            role=aws.role,
            s3_root=s3_root,
        )
        tags = resource_tags(config.sagemaker, run=request.endpoint_name, kind="endpoint", expires_at=request.expires_at)
        return model, deploy_arguments(config, endpoint=request.endpoint_name, tags=tags), staged, recorder

    def plan_deploy(self, request: DeployRequest) -> dict[str, Any]:
        """The exact CreateModel, CreateEndpointConfig and CreateEndpoint requests, or, over an
        endpoint the ledger knows as live, the in-place update's; nothing is called."""
        if request.serving:
            return self._plan_update(request)
        model, kwargs, staged, recorder = self._deployment(request, dry_run=True)
        self._send(f"endpoint {request.endpoint_name}", lambda: model.deploy(**kwargs))
        return self._deploy_plan(request, model, recorder, staged)

    def _deploy_plan(
        self, request: DeployRequest, model: Any, recorder: RecordingClient, staged: list[StagedObject]
    ) -> dict[str, Any]:
        estimate = pricing.endpoint_estimate(request.config)
        sm = request.config.sagemaker
        requests = recorder.requests()
        if sm.scheduler_role:
            # Created, or moved by a redeploy (UpdateSchedule, the same request).
            requests["CreateSchedule"] = schedules.schedule_request(sm, request.endpoint_name, request.expires_at)
        return {
            "backend": self.name,
            "endpoint": request.endpoint_name,
            "model": model.name,
            "requests": requests,
            "ttl": self._ttl_note(request),
            "uploads": [item.to_json() for item in staged],
            "expires_at": request.expires_at.isoformat(),
            "est_cost_per_hour": estimate["usd_per_hour"],
            "cost": estimate,
        }

    # --- redeploys: an existing endpoint is updated in place

    def _update(
        self, request: DeployRequest, dry_run: bool, endpoint_arn: str | None = None
    ) -> tuple[Any, str, Callable[[], None], Callable[[], None], list[StagedObject], RecordingClient]:
        """(model, new endpoint config name, send, retag, staged files, recorder) of a redeploy:
        send is CreateModel, CreateEndpointConfig and UpdateEndpoint; retag is AddTags with the
        new expiry (UpdateEndpoint keeps the endpoint's tags, and the TTL starts again with a
        redeploy), sent once the update succeeded, so a failed one leaves the old expiry."""
        model, _, staged, recorder = self._deployment(request, dry_run)
        endpoint = request.endpoint_name
        config_name = sagemaker_names.endpoint_config_name(endpoint, model.model_data, request.expires_at)
        tags = resource_tags(request.config.sagemaker, run=endpoint, kind="endpoint", expires_at=request.expires_at)
        arn = endpoint_arn or f"arn:aws:sagemaker:{self.aws.region}:{self.aws.account_id}:endpoint/{endpoint.lower()}"

        def send() -> None:
            send_endpoint_update(request.config, model, endpoint=endpoint, endpoint_config=config_name, tags=tags)

        def retag() -> None:
            recorder.add_tags(ResourceArn=arn, Tags=[tag for tag in tags if tag["Key"] == EXPIRES_AT])

        return model, config_name, send, retag, staged, recorder

    def _plan_update(self, request: DeployRequest) -> dict[str, Any]:
        serving = request.serving or {}
        model, config_name, send, retag, staged, recorder = self._update(request, dry_run=True)
        self._send(f"endpoint {request.endpoint_name} update", send)
        self._send(f"endpoint {request.endpoint_name} tags", retag)
        plan = self._deploy_plan(request, model, recorder, staged)
        old = [("model", serving.get("model")), ("endpoint-config", serving.get("endpoint_config"))]
        plan["update"] = {
            "endpoint_config": config_name,
            "replaces": {"model": serving.get("model"), "endpoint_config": serving.get("endpoint_config")},
            # Once the endpoint is InService on the new config; a failed update deletes the new
            # model and config instead, and the old ones keep serving.
            "then_delete": [f"{kind}/{name}" for kind, name in old if name],
            "known_from": "the ledger (a real deploy asks SageMaker)",
        }
        return plan

    def _update_endpoint(
        self,
        request: DeployRequest,
        existing: dict[str, Any],
        wait: bool,
        on_created: Callable[[EndpointInfo], None] | None,
    ) -> EndpointInfo:
        endpoint = request.endpoint_name
        if existing["EndpointStatus"] != "InService":
            raise DogbreedError(
                f"endpoint {endpoint} is {existing['EndpointStatus']} on SageMaker, and only an InService endpoint "
                f"can be updated; wait for it (dogbreed status), or take it down (dogbreed teardown {endpoint})"
            )
        old_config, old_models = inventory.serving_chain(self._sagemaker, endpoint)
        if request.config.sagemaker.preflight:
            self.preflight_deploy(request)
        model, config_name, send, retag, staged, recorder = self._update(
            request, dry_run=False, endpoint_arn=existing["EndpointArn"]
        )
        if model.name in old_models or old_config == config_name:
            # The same model, the same expiry to the second: deleting "the old model" would
            # delete the one that serves.
            raise DogbreedError(
                f"endpoint {endpoint} already serves {model.name}, made by this very deploy request; nothing to update"
            )
        self._upload(staged)
        self.reporter.info(f"endpoint {endpoint} exists: updating it in place to {model.name} (old: {', '.join(old_models)})")
        try:
            self._send(f"endpoint {endpoint} update", send)
        except DogbreedError as exc:
            self._discard(recorder)
            raise DogbreedError(f"{exc}; the endpoint still serves {', '.join(old_models)}") from None
        finally:
            self._sent(endpoint, recorder)
        if on_created is not None:
            on_created(self.describe_endpoint(endpoint))
        if not wait:
            self._new_expiry(endpoint, recorder, retag, request)  # cannot wait for the outcome: now
            self.reporter.info(
                f"endpoint {endpoint} is updating; model {', '.join(old_models)} and endpoint config {old_config} stay until "
                f"it is done (`dogbreed teardown --all` sweeps them, as does the endpoint's teardown)"
            )
            return self.describe_endpoint(endpoint)
        settled = follow_endpoint(self._sagemaker, endpoint, on_status=self.reporter.info, poll_seconds=self.poll_seconds)
        if settled["EndpointStatus"] != "InService" or settled["EndpointConfigName"] != config_name:
            # SageMaker rolls a failed update back: the old config serves on, with the reason.
            self._discard(recorder)
            raise DogbreedError(
                f"endpoint {endpoint}: the update to {model.name} failed ({settled.get('FailureReason') or settled['EndpointStatus']}); "
                f"it still serves {', '.join(old_models)} ({settled['EndpointStatus']}), and the new model and config were deleted"
            )
        self._new_expiry(endpoint, recorder, retag, request)
        old = [("model", name) for name in old_models] + ([("endpoint-config", old_config)] if old_config else [])
        for kind, name in inventory.teardown_order(old):
            inventory.delete(self._sagemaker, kind, name)
        self.reporter.info(f"endpoint {endpoint} now serves {model.name}; deleted the old {', '.join(n for _, n in old)}")
        return self.describe_endpoint(endpoint)

    def _new_expiry(self, endpoint: str, recorder: RecordingClient, retag: Callable[[], None], request: DeployRequest) -> None:
        """A redeploy's TTL starts again: the endpoint's expiry tag, and its schedule, move."""
        self._send(f"endpoint {endpoint} tags", retag)
        self._sent(endpoint, recorder)
        self._schedule_ttl(request)

    # --- the TTL, enforced by EventBridge Scheduler

    def _ttl_note(self, request: DeployRequest) -> str:
        endpoint, at = request.endpoint_name, request.expires_at.isoformat()
        if request.config.sagemaker.scheduler_role:
            return f"EventBridge Scheduler deletes endpoint {endpoint} at {at} (schedule {schedules.schedule_name(endpoint)})"
        return (
            f"only a tag: nothing deletes endpoint {endpoint} at {at}; set sagemaker.scheduler_role to have "
            "EventBridge Scheduler delete it, or run `dogbreed teardown --expired --yes --backend sagemaker` on a schedule"
        )

    def _schedule_ttl(self, request: DeployRequest) -> None:
        """The one-time schedule that deletes the endpoint at its expiry (or, without a
        scheduler role, a plain warning that the TTL is only a tag)."""
        sm = request.config.sagemaker
        if not sm.scheduler_role:
            self.reporter.warn(f"deploy.ttl is {self._ttl_note(request)}")
            return
        done, sent = self._scheduler_call(
            f"schedule for endpoint {request.endpoint_name}",
            lambda client: schedules.put_schedule(client, sm, request.endpoint_name, request.expires_at),
        )
        self.last_requests["UpdateSchedule" if done == "moved" else "CreateSchedule"] = sent
        self.reporter.info(f"{self._ttl_note(request)}: {done}")

    def _scheduler_call(self, what: str, action: Callable[[Any], Any], denied: Any = None) -> Any:
        """`denied`: what a caller without scheduler permissions gets instead of an error
        (status and teardown must work for someone who never used schedules); None raises."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return action(self.aws.client("scheduler"))
        except ClientError as exc:
            if denied is not None and code_of(exc) in ("AccessDeniedException", "AccessDenied"):
                self.reporter.warn(f"{what}: no permission to read EventBridge Scheduler ({code_of(exc)}); skipped")
                return denied
            raise DogbreedError(f"{what}: EventBridge Scheduler said {code_of(exc)}: {message_of(exc)}") from None
        except BotoCoreError as exc:
            raise DogbreedError(f"{what}: cannot reach EventBridge Scheduler ({exc})") from None

    def _discard(self, recorder: RecordingClient) -> None:
        """Delete what a failed update created (its model and endpoint config), newest first."""
        created = [("model", c.params["ModelName"]) for c in recorder.calls if c.operation == "CreateModel"]
        created += [
            ("endpoint-config", c.params["EndpointConfigName"]) for c in recorder.calls if c.operation == "CreateEndpointConfig"
        ]
        for kind, name in reversed(created):
            inventory.delete(self._sagemaker, kind, name)

    def preflight_deploy(self, request: DeployRequest) -> None:
        config = request.config
        instance_type = "serverless" if config.deploy.serverless else config.sagemaker.instance_type.endpoint
        problems = [
            *preflight.check_region(self.aws),
            *preflight.check_instance_types(self.aws, {"endpoint": instance_type}),
            *preflight.check_image(config, self.aws, "inference", instance_type),
            *preflight.check_role(self.aws),
        ]
        if not request.model_uri.startswith("s3://"):
            problems += preflight.check_bucket(self.aws)
        problems += self._check_quotas(quotas.endpoint_needs(config))
        problems += preflight.check_scheduler_role(self.aws, config)
        preflight.raise_if(problems, self.reporter, f"endpoint {request.endpoint_name}")

    def _check_code(self, model_uri: str, trusted: bool, use: str) -> None:
        """A model.tar.gz from this machine is compared with this dogbreed's handler as the
        local backend does (serving/handler_code.py), read from the file as it would be
        uploaded: its code/inference.py runs in the container of whatever serves it (an
        endpoint, a transform job) with that resource's role. Every path that creates a
        SageMaker model from a local archive calls this before any request; `use` says what
        for, in the --trust-code warning. s3:// models are what training jobs wrote, and are
        not read back here."""
        if model_uri.startswith("s3://"):
            return
        try:
            handle = open_regular(Path(model_uri).expanduser())
        except FileRefusedError as exc:
            raise DogbreedError(f"model {model_uri}: {exc.problem}; give a model.tar.gz (a file or an s3:// URI)") from None
        with handle:
            foreign = check_archive_code(handle, model_uri, trusted)
        if foreign:
            self.reporter.warn(f"--trust-code: {use} {model_uri} with its own code ({'; '.join(foreign[:3])})")

    def deploy(
        self, request: DeployRequest, wait: bool = True, on_created: Callable[[EndpointInfo], None] | None = None
    ) -> EndpointInfo:
        endpoint = request.endpoint_name
        # Before any request: a new endpoint and an update alike.
        self._check_code(request.model_uri, request.trust_code, "deploying")
        existing = self._describe("describe_endpoint", EndpointName=endpoint)
        if existing is not None:
            return self._update_endpoint(request, existing, wait, on_created)
        if request.config.sagemaker.preflight:
            self.preflight_deploy(request)
        model, kwargs, staged, recorder = self._deployment(request, dry_run=False)
        self._upload(staged)
        self._send(f"endpoint {endpoint}", lambda: model.deploy(**kwargs))
        self._sent(endpoint, recorder)
        if on_created is not None:
            on_created(self.describe_endpoint(endpoint))  # it bills from here on: record it first
        self._schedule_ttl(request)
        if wait:
            settled = follow_endpoint(self._sagemaker, endpoint, on_status=self.reporter.info, poll_seconds=self.poll_seconds)
            if settled["EndpointStatus"] != "InService":
                raise DogbreedError(
                    f"endpoint {endpoint} {settled['EndpointStatus']}: {settled.get('FailureReason', 'no reason given')}; "
                    f"`dogbreed teardown {endpoint}` removes what was created"
                )
        return self.describe_endpoint(endpoint)

    def invoke(self, endpoint: str, body: bytes, content_type: str, accept: str = "application/json") -> bytes:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            response = self._runtime.invoke_endpoint(EndpointName=endpoint, Body=body, ContentType=content_type, Accept=accept)
        except ClientError as exc:
            code, message = code_of(exc), message_of(exc)
            if code == "ModelError":
                detail = exc.response.get("OriginalMessage") or message
                raise DogbreedError(f"endpoint {endpoint} refused the request: {detail}") from None
            if code == "ValidationError" and "not found" in message.lower():
                raise NotFoundError(f"endpoint {endpoint} not found on SageMaker; deploy it first (dogbreed deploy)") from None
            raise DogbreedError(f"endpoint {endpoint}: SageMaker said {code}: {message}") from None
        except BotoCoreError as exc:
            raise DogbreedError(f"endpoint {endpoint}: cannot reach SageMaker runtime ({exc})") from None
        return response["Body"].read()

    def describe_endpoint(self, endpoint: str) -> EndpointInfo:
        described = self._describe("describe_endpoint", EndpointName=endpoint)
        if described is None:
            return EndpointInfo(name=endpoint, backend=self.name, state="gone")
        endpoint_config = self._describe("describe_endpoint_config", EndpointConfigName=described["EndpointConfigName"])
        model_name = ((endpoint_config or {}).get("ProductionVariants") or [{}])[0].get("ModelName")
        model = self._describe("describe_model", ModelName=model_name) if model_name else None
        tags = as_dict(self._sagemaker.list_tags(ResourceArn=described["EndpointArn"]).get("Tags", []))
        return EndpointInfo(**endpoint_info(self.config, described, endpoint_config, model, tags))

    def delete_endpoint(self, endpoint: str) -> bool:
        """Delete the endpoint, its endpoint config and its models; False if none existed."""
        config_name, models = inventory.serving_chain(self._sagemaker, endpoint)
        if config_name is None:
            return False
        chain = [("model", m) for m in models] + [("endpoint-config", config_name), ("endpoint", endpoint)]
        deleted = [inventory.delete(self._sagemaker, kind, name) for kind, name in inventory.teardown_order(chain)]
        if self._scheduler_call(
            f"schedule of endpoint {endpoint}",
            lambda client: schedules.delete_schedule(client, self.config.sagemaker, endpoint),
            denied=False,
        ):
            self.reporter.info(f"deleted schedule {schedules.schedule_name(endpoint)} (it would have deleted {endpoint})")
        self.reporter.info(f"deleted endpoint {endpoint}, its endpoint config and {len(models)} model(s)")
        return any(deleted)
