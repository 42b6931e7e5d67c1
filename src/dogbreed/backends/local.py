"""The embedded default backend: the same job, environment, artifacts and HTTP contract as
SageMaker, with no AWS, no Docker and no network.

Training lives in local_training.py (train.py as a subprocess with the SM_* environment),
tuning in local_tuning/ (Optuna over real jobs of train.py), serving in local_endpoints.py
(a background server with SageMaker's endpoint contract), batch scoring in
local_transform.py (the endpoint's handler in this process); this class only puts them
behind the one Backend protocol.
"""

from __future__ import annotations

from dogbreed.backends.datasets import open_store
from dogbreed.backends.local_endpoints import LocalEndpoints
from dogbreed.backends.local_training import LocalTraining
from dogbreed.backends.local_transform import LocalTransform
from dogbreed.backends.local_tuning.backend import LocalTuning
from dogbreed.data.stores import DatasetStore


class LocalBackend(LocalTraining, LocalTuning, LocalEndpoints, LocalTransform):
    name = "local"

    def default_dataset_uri(self, name: str) -> str:
        return str((self.workspace.datasets() / name).resolve())

    def dataset_store(self, uri: str) -> DatasetStore:
        """A folder; an s3:// destination works too (the SageMaker section's credentials)."""

        def aws():  # a dogbreed.aws.session.AwsSession, imported only for an S3 destination
            from dogbreed.aws.session import AwsSession

            return AwsSession(self.config.sagemaker)

        return open_store(uri, aws)
