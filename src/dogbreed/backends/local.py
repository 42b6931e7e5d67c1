"""The embedded default backend: the same job, environment, artifacts and HTTP contract as
SageMaker, with no AWS, no Docker and no network.

Training lives in local_training.py (train.py as a subprocess with the SM_* environment),
serving in local_endpoints.py (a background server with SageMaker's endpoint contract);
this class only puts the two halves behind the one Backend protocol.
"""

from __future__ import annotations

from dogbreed.backends.local_endpoints import LocalEndpoints
from dogbreed.backends.local_training import LocalTraining
from dogbreed.config import Config
from dogbreed.reporting import NullReporter, Reporter
from dogbreed.workspace import Workspace


class LocalBackend(LocalTraining, LocalEndpoints):
    name = "local"

    def __init__(self, config: Config, workspace: Workspace, reporter: Reporter | None = None) -> None:
        self.config = config
        self.workspace = workspace
        self.reporter = reporter or NullReporter()
