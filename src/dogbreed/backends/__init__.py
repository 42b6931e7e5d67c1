"""Where work runs. Backends are chosen by name and imported lazily (sagemaker is heavy)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dogbreed.backends.base import Backend
    from dogbreed.cli.session import Session


def get_backend(session: Session) -> Backend:
    name = session.config.backend
    if name == "local":
        from dogbreed.backends.local import LocalBackend

        return LocalBackend(session.config, session.workspace, session.reporter)
    if name == "sagemaker":
        from dogbreed.backends.sagemaker import SageMakerBackend

        return SageMakerBackend.from_config(session.config, session.workspace, session.reporter)
    raise ValueError(f"unknown backend {name!r}")
