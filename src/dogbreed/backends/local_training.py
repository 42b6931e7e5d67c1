"""Training on the local backend: train.py as a detached job with SageMaker's environment.

The job folder mirrors /opt/ml (see job_layout.py); a supervisor process runs the job so it
can outlive the CLI (`--no-wait`) and records how it ended. Metrics come from the job's log
through the same regexes SageMaker uses (jobspec.py), so a parsing bug shows up here first.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dogbreed.backends.base import JobRecords, LogSink, TrainingOutcome, TrainingRequest
from dogbreed.backends.job_layout import JobLayout, job_argv, job_env, write_input_config
from dogbreed.config import Config
from dogbreed.errors import DogbreedError, NotFoundError, UsageError
from dogbreed.jobspec import SOURCE_DIR, TRAINING_CHANNEL, WEIGHTS_CHANNEL, kept_epoch_metrics, metric_spec, weights_channel
from dogbreed.ledger import Resource
from dogbreed.processes import is_alive
from dogbreed.progress import NullReporter, Reporter
from dogbreed.report.records import RECORDS_FILE
from dogbreed.workspace import Workspace

if TYPE_CHECKING:
    from dogbreed.backends.local_tuning.warm_start import WarmStart

TERMINAL = ("Completed", "Failed", "Stopped")
POLL_SECONDS = 0.05  # reading status.json and the log tail: cheap, and trials last under a second
STARTING_WAIT_SECONDS = 15.0  # a starting supervisor names itself within ~1 s; a loaded machine, more


def trial_threads(config: Config) -> int:
    """torch threads per process of a tuning trial. Trials run side by side: each gets its
    share of the cores, or their thread pools spin against each other (several times slower
    on 2 cores). A tuning worker exports it before it imports torch (local_tuning/worker.py)."""
    return max(1, (os.cpu_count() or 1) // (config.tune.max_parallel_jobs * config.train.processes))


def parse_log(text: str) -> tuple[list[dict[str, float]], dict[str, float]]:
    """(per-epoch history, final metrics) from the job's output, with the SageMaker regexes.

    Final metrics are each metric's last value, as SageMaker's FinalMetricDataList keeps them;
    train.py's closing line repeats the kept epoch's train_* and valid_* so both backends
    agree, and kept_epoch_metrics holds an older job's log to the same."""
    spec = metric_spec()
    history: list[dict[str, float]] = []
    metrics: dict[str, float] = {}
    for line in text.splitlines():
        found = spec.parse_line(line)
        if spec.epoch_key in found:
            history.append(found)
        metrics.update({name: value for name, value in found.items() if name != spec.epoch_key})
    return history, kept_epoch_metrics(metrics, history)


class LocalTraining:
    """The training half of LocalBackend, and on its own what a tuning worker (trials need no
    endpoints) and the SageMaker pre-flight's local rehearsal run jobs with."""

    name = "local"
    runs_here = True  # train.py is a subprocess here: tuning pins local paths for its workers
    resumes_jobs = True  # a job's folder keeps its checkpoints: `train` again resumes it

    def __init__(
        self, config: Config, workspace: Workspace, reporter: Reporter | None = None, launcher: WarmStart | None = None
    ) -> None:
        self.config = config
        self.workspace = workspace
        self.reporter = reporter or NullReporter()
        # Tuning workers pass a warmed WarmStart: their trials fork instead of exec (warm_start.py).
        self.launcher = launcher

    def _layout(self, name: str) -> JobLayout:
        return JobLayout(self.workspace.root / "jobs" / name)

    def _channels(self, request: TrainingRequest) -> tuple[dict[str, str], dict[str, Any]]:
        dataset = request.dataset_uri
        if dataset.startswith("s3://"):
            raise DogbreedError(
                f"dataset {dataset} is on S3 but the backend is local; ingest to a local folder "
                "(dogbreed ingest SOURCE) or run with --backend sagemaker"
            )
        dataset_path = Path(dataset).resolve()
        if not dataset_path.is_dir():
            raise NotFoundError(f"dataset folder {dataset_path} not found; run `dogbreed ingest` first")

        def on_disk(weights: str) -> tuple[str, str]:
            path = Path(weights).expanduser().resolve()
            if not path.is_file():
                raise DogbreedError(f"model.weights: {weights} not found; give a state_dict file, 'imagenet' or 'none'")
            return str(path.parent), path.name

        weights, hyperparameters = weights_channel(request.hyperparameters, on_disk)
        return {TRAINING_CHANNEL: str(dataset_path), **weights}, hyperparameters

    def _job_spec(self, request: TrainingRequest) -> dict[str, Any]:
        layout = self._layout(request.name)
        channels, hyperparameters = self._channels(request)
        hyperparameters["cache-dir"] = str(self.workspace.root.resolve() / "cache" / "features")
        hyperparameters["checkpoint-dir"] = str(layout.checkpoint_dir.resolve())
        if request.max_batches:
            hyperparameters["max-batches"] = request.max_batches
        processes = self.config.train.processes
        env = job_env(JobLayout(layout.root.resolve()), channels, hyperparameters)
        if request.manifest_sha256:
            env["DOGBREED_MANIFEST_SHA256"] = request.manifest_sha256  # train.py refuses another dataset
        if request.parent and "OMP_NUM_THREADS" not in os.environ:
            env["OMP_NUM_THREADS"] = str(trial_threads(self.config))
        return {
            "name": request.name,
            "job_dir": str(layout.root.resolve()),
            "argv": job_argv(hyperparameters, processes),
            "cwd": str(SOURCE_DIR),
            "channels": channels,
            "hyperparameters": hyperparameters,
            "env": env,
            "processes": processes,
            "dataset_uri": request.dataset_uri,
            "manifest_sha256": request.manifest_sha256,
            "parent": request.parent,
        }

    def unrecorded_job(self, request: TrainingRequest) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """The job folder's request.json against this request, for a folder the ledger has no
        row for (deleted, or the row lost): a job's settings are in its folder too. A folder
        without a readable request.json is nobody's job that can be checked: refused."""
        layout = self._layout(request.name)
        if not layout.root.exists():
            return None
        try:
            before = self._settings(json.loads(layout.request_file.read_text()))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            raise UsageError(
                f"training job folder {layout.root} exists, but neither the ledger nor a readable request.json in it "
                "says what it ran with; give another --name, or delete that folder"
            ) from None
        return before, self._settings(self._job_spec(request))

    @staticmethod
    def _settings(spec: dict[str, Any]) -> dict[str, Any]:
        """What a job ran with, as request.json keeps it: its flags (less the workspace's own
        paths, which move with it), its dataset and its weights file's folder."""
        hps = {k: v for k, v in spec["hyperparameters"].items() if k not in ("cache-dir", "checkpoint-dir")}
        settings = json.loads(json.dumps(hps, default=str))
        return {**settings, "dataset": spec["dataset_uri"], "weights folder": spec["channels"].get(WEIGHTS_CHANNEL)}

    def plan_training(self, request: TrainingRequest) -> dict[str, Any]:
        spec = self._job_spec(request)
        return {
            "backend": "local",
            "training_job": request.name,
            "command": spec["argv"],
            "cwd": spec["cwd"],
            "environment": {key: value for key, value in spec["env"].items() if key.startswith("SM_")},
            "channels": spec["channels"],
            "job_dir": spec["job_dir"],
            "est_cost": 0.0,
        }

    def start_training(self, request: TrainingRequest) -> None:
        """Start the job's supervisor, detached. BusyError if another process runs this job:
        the job lock is taken before anything in the folder is touched and passes to the
        supervisor, which holds it as long as the job runs (JobLayout.lock)."""
        spec = self._job_spec(request)
        layout = JobLayout(Path(spec["job_dir"]))
        lock = layout.lock()
        try:
            try:
                self._start_locked(layout, spec, lock)
            finally:
                os.close(lock)  # ours; the supervisor holds its own copy of the descriptor
        except KeyboardInterrupt:
            # Ctrl-C or SIGTERM (a tuning worker told to stop) while the job was starting: a
            # supervisor that did start is stopped, as nobody would follow it, and a job that
            # never started does not stay "Starting" for good.
            if layout.is_locked():
                self._stop(layout)
            elif layout.read_status().get("state") == "Starting":
                layout.write_status(state="Stopped", failure="stopped before it started")
            raise

    def _start_locked(self, layout: JobLayout, spec: dict[str, Any], lock: int) -> None:
        layout.make()
        write_input_config(layout, spec["channels"], spec["hyperparameters"])
        layout.request_file.write_text(json.dumps(spec, indent=2))
        # A fresh status: an earlier run's outcome must not be mistaken for this one's.
        layout.status_file.unlink(missing_ok=True)
        layout.write_status(state="Starting")
        if self.launcher is not None and self.launcher.forks(spec) and self.launcher.start_supervisor(layout, lock):
            return  # a fork: it keeps the lock's descriptor; else fork was refused: exec below
        subprocess.Popen(
            [sys.executable, "-m", "dogbreed.backends.job_supervisor", str(layout.root), str(lock)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            close_fds=True,
            pass_fds=(lock,),
        )

    def _state(self, layout: JobLayout) -> dict[str, Any]:
        status = layout.read_status()
        state = status.get("state")
        if state in ("Starting", "InProgress") and not is_alive(status.get("supervisor_pid")):
            if layout.is_locked():
                return status  # held: the supervisor has not written its pid yet
            status = {**status, "state": "Failed", "failure": "the job's supervisor died (killed?)"}
        return status

    def describe_training(self, name: str) -> TrainingOutcome:
        layout = self._layout(name)
        if not layout.request_file.exists():
            raise NotFoundError(f"training job {name} not found in {self.workspace.root / 'jobs'}")
        status = self._state(layout)
        text = layout.log.read_text(errors="replace") if layout.log.exists() else ""
        history, metrics = parse_log(text)
        state = status.get("state", "InProgress")
        return TrainingOutcome(
            name=name,
            state="InProgress" if state == "Starting" else state,
            model_uri=str(layout.model_tar) if state == "Completed" else None,
            output_uri=str(layout.output_data_dir),
            metrics=metrics,
            history=history,
            failure=status.get("failure"),
            log_uri=str(layout.log),
        )

    def _records_path(self, job: Resource) -> Path:
        default = self._layout(job.name).output_data_dir / RECORDS_FILE
        output = job.meta.get("output_uri")
        if output and "://" not in str(output):
            recorded = Path(output) / RECORDS_FILE
            # A relative workspace makes the recorded path relative to where `train` ran.
            if recorded.is_file() or not default.is_file():
                return recorded
        return default

    def job_records(self, job: Resource, dest: Path) -> JobRecords:
        """The records train.py's recorder wrote into the job folder; nothing to fetch."""
        path = self._records_path(job)
        if not path.is_file():
            failure = job.meta.get("failure")
            if job.state == "Failed" and failure:
                # It failed before its first epoch: why, not where records would have been.
                log = job.meta.get("log_uri")
                raise DogbreedError(
                    f"training job {job.name} failed before it recorded anything, so there is nothing to report: "
                    f"{failure}" + (f"; full log: {log}" if log else "")
                )
            raise DogbreedError(
                f"training job {job.name} has no records at {path} (not started yet, or trained before records existed)"
            )
        return JobRecords(path, str(path), status=job.state)

    def stop_training(self, name: str) -> None:
        self._stop(self._layout(name))

    def _stop(self, layout: JobLayout) -> None:
        status = layout.read_status()
        deadline = time.monotonic() + STARTING_WAIT_SECONDS
        while status.get("state") == "Starting" and layout.is_locked() and time.monotonic() < deadline:
            # Its supervisor is starting and has no pid in status.json yet; it writes one as it
            # starts train.py, its stop handler already set. Before, such a job was not stopped.
            time.sleep(POLL_SECONDS)
            status = layout.read_status()
        pid = status.get("supervisor_pid")
        if is_alive(pid):
            os.kill(pid, signal.SIGTERM)
        elif is_alive(status.get("pid")) and layout.is_locked():
            # Its supervisor was killed and train.py runs on, holding the job's lock: stop it
            # (its own session: the group is train.py and its workers). It checkpoints per epoch.
            os.killpg(status["pid"], signal.SIGTERM)

    def wait_training(self, name: str, on_log: LogSink | None = None) -> TrainingOutcome:
        """Follow the job's log until it ends. Ctrl-C stops the job cleanly (it resumes later)."""
        layout = self._layout(name)
        offset = 0
        pending = b""
        try:
            while True:
                status = self._state(layout)
                if layout.log.exists():
                    with layout.log.open("rb") as log:
                        log.seek(offset)
                        chunk = log.read()
                    offset += len(chunk)
                    pending += chunk
                    *lines, pending = pending.split(b"\n")
                    for line in lines:
                        if on_log:
                            on_log(line.decode(errors="replace"))
                if status.get("state") in TERMINAL:
                    if pending and on_log:
                        on_log(pending.decode(errors="replace"))
                    return self.describe_training(name)
                time.sleep(POLL_SECONDS)
        except KeyboardInterrupt:
            self.stop_training(name)
            deadline = time.monotonic() + 30
            while self._state(layout).get("state") not in TERMINAL and time.monotonic() < deadline:
                time.sleep(POLL_SECONDS)
            raise
