"""Where work runs. Backends are chosen by name and imported lazily (sagemaker is heavy)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dogbreed.backends.base import Backend
    from dogbreed.config import Config
    from dogbreed.ledger import Resource
    from dogbreed.progress import Reporter
    from dogbreed.workspace import Workspace


def get_backend(config: Config, workspace: Workspace, reporter: Reporter | None = None, name: str | None = None) -> Backend:
    """The backend `name` (default: config.backend), with the config's settings."""
    name = name or config.backend
    if name == "local":
        from dogbreed.backends.local import LocalBackend

        return LocalBackend(config, workspace, reporter)
    if name == "sagemaker":
        from dogbreed.backends.sagemaker import SageMakerBackend

        return SageMakerBackend(config, workspace, reporter)
    raise ValueError(f"unknown backend {name!r}")


def hourly_cost(config: Config, record: Resource, instance_type: str | None = None) -> float:
    """Estimated USD per hour of a resource the ledger knows, on the backend that runs it, from
    sagemaker.prices (no call: status prices unchecked resources too). Local work is free."""
    if record.backend == "sagemaker":
        from dogbreed.aws.pricing import resource_hourly

        return resource_hourly(config, record.kind, record.meta, instance_type)
    return 0.0
