"""A SageMaker-like job folder on local disk, and the environment the container would set.

<workspace>/jobs/<name>/
    input/config/{hyperparameters,resourceconfig,inputdataconfig}.json
    model/            SM_MODEL_DIR (packed into model.tar.gz when the job ends)
    output/data/      SM_OUTPUT_DATA_DIR (records.jsonl, metrics.json)
    checkpoints/      --checkpoint-dir (resume after a kill)
    train.log         everything the job printed
    status.json       written by the supervisor: state, exit code, times
    job.lock          flock'ed by whoever runs the job (see JobLayout.lock)
    model.tar.gz
The environment variable names and meanings follow the sagemaker-training toolkit
(sagemaker_training/environment.py), so train.py cannot tell the difference.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dogbreed.atomic_files import write_text
from dogbreed.config.flags import format_value, to_argv
from dogbreed.job_lock import JobLock
from dogbreed.jobspec import ENTRY_POINT, SOURCE_DIR

HOST = "algo-1"


@dataclass(frozen=True)
class JobLayout:
    root: Path

    @property
    def config_dir(self) -> Path:
        return self.root / "input" / "config"

    @property
    def model_dir(self) -> Path:
        return self.root / "model"

    @property
    def output_dir(self) -> Path:
        return self.root / "output"

    @property
    def output_data_dir(self) -> Path:
        return self.output_dir / "data"

    @property
    def checkpoint_dir(self) -> Path:
        return self.root / "checkpoints"

    @property
    def log(self) -> Path:
        return self.root / "train.log"

    @property
    def status_file(self) -> Path:
        return self.root / "status.json"

    @property
    def request_file(self) -> Path:
        return self.root / "request.json"

    @property
    def model_tar(self) -> Path:
        return self.root / "model.tar.gz"

    @property
    def lock_file(self) -> Path:
        return self.root / "job.lock"

    def job_lock(self) -> JobLock:
        return JobLock(self.lock_file, f"training job {self.root.name}")

    def lock(self, attempts: int = 5) -> int:
        """An exclusive lock on job.lock (dogbreed.job_lock): the descriptor, or BusyError
        naming the holder's pid.

        One job folder, one run: whoever starts the job takes this before writing anything
        there and hands the descriptor to the supervisor it starts (inherited), which holds
        it until it exits and writes its own pid into it, so no second `train` or resume can
        start the same job while it runs, however close together they start."""
        return self.job_lock().acquire(attempts)

    def is_locked(self) -> bool:
        """Whether some process runs (or is starting) this job right now."""
        return self.job_lock().held()

    def make(self) -> None:
        for folder in (self.config_dir, self.model_dir, self.output_data_dir, self.checkpoint_dir):
            folder.mkdir(parents=True, exist_ok=True)

    def read_status(self) -> dict[str, Any]:
        try:
            return json.loads(self.status_file.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    def write_status(self, **status: Any) -> None:
        merged = {**self.read_status(), **status}
        write_text(self.status_file, json.dumps(merged, indent=2))


def job_argv(hyperparameters: dict[str, Any], processes: int = 1, source_dir: Path = SOURCE_DIR) -> list[str]:
    """The command that runs train.py: plain, or under torchrun for data parallel."""
    script = str(source_dir / ENTRY_POINT)
    if processes > 1:
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
        return [*launcher, script, *to_argv(hyperparameters)]
    return [sys.executable, script, *to_argv(hyperparameters)]


def job_env(
    layout: JobLayout, channels: dict[str, str], hyperparameters: dict[str, Any], num_cpus: int | None = None
) -> dict[str, str]:
    """The SM_* variables of the SageMaker training container, pointed at the job folder."""
    env = {
        "SM_MODEL_DIR": str(layout.model_dir),
        "SM_OUTPUT_DIR": str(layout.output_dir),
        "SM_OUTPUT_DATA_DIR": str(layout.output_data_dir),
        "SM_INPUT_DIR": str(layout.root / "input"),
        "SM_INPUT_CONFIG_DIR": str(layout.config_dir),
        "SM_CHANNELS": json.dumps(sorted(channels)),
        "SM_HOSTS": json.dumps([HOST]),
        "SM_CURRENT_HOST": HOST,
        "SM_NUM_GPUS": "0",
        "SM_NUM_CPUS": str(num_cpus or os.cpu_count() or 1),
        "SM_MODULE_NAME": "train",
        "SM_USER_ENTRY_POINT": ENTRY_POINT,
        "SM_HPS": json.dumps(hyperparameters),
        "SM_USER_ARGS": json.dumps(to_argv(hyperparameters)),
        "SM_LOG_LEVEL": "20",
        "PYTHONUNBUFFERED": "1",
    }
    for name, path in channels.items():
        env[f"SM_CHANNEL_{name.upper()}"] = path
    for key, value in hyperparameters.items():
        env[f"SM_HP_{key.upper().replace('-', '_')}"] = format_value(value)
    return env


def write_input_config(layout: JobLayout, channels: dict[str, str], hyperparameters: dict[str, Any]) -> None:
    """The three JSON files a SageMaker container finds in /opt/ml/input/config."""
    files = {
        # SageMaker passes every hyperparameter as a string.
        "hyperparameters.json": {key: format_value(value) for key, value in hyperparameters.items()},
        "resourceconfig.json": {"current_host": HOST, "hosts": [HOST], "network_interface_name": "lo"},
        "inputdataconfig.json": {
            name: {"TrainingInputMode": "File", "S3DistributionType": "FullyReplicated"} for name in channels
        },
    }
    for filename, content in files.items():
        (layout.config_dir / filename).write_text(json.dumps(content, indent=2))
