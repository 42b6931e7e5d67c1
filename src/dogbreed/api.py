"""dogbreed from Python: notebooks and scripts drive the same steps as the CLI.

    from dogbreed.api import Project

    project = Project(configs=["configs/local.yaml"], sets={"tune.max_jobs": 4})
    project.ingest("examples/dogs")           # -> the ingest answer, a dict
    project.tune()
    trained = project.train(from_tuning="latest")
    project.deploy()
    project.predict("examples/predict", top_k=3)
    project.teardown()

Each method runs the CLI command of the same name with `--json` in a child process and
returns its JSON answer (DESIGN section 3: the same fields the CLI prints). A child process,
not an import of the commands: the step behaves exactly as `dogbreed <command>` does (its
logging, its signal handling, its exit code), a notebook kernel never holds torch's or a
server's state between steps, and switching to SageMaker is the same one config change as
on the command line (`configs=[..., "configs/sagemaker.yaml"]` or `backend="sagemaker"`).
A failed step raises StepFailed with the command's one-line error.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dogbreed.errors import DogbreedError


class StepFailed(DogbreedError):
    """A step's command exited non-zero; `stderr` holds everything it printed there."""

    def __init__(self, command: str, code: int, stderr: str) -> None:
        lines = [line for line in stderr.strip().splitlines() if line.strip()]
        super().__init__(f"dogbreed {command} failed (exit {code}): {lines[-1] if lines else 'no message'}")
        self.code, self.stderr = code, stderr


@dataclass
class Project:
    """One project's settings, applied to every step.

    configs: YAML files, layered in order over the built-in defaults (as `-c` on the CLI);
    sets: dotted keys and values (as `--set key=value`); backend: `local` or `sagemaker`
    (default: the configs'); log: where each step's progress (its stderr) goes, default this
    process's stderr."""

    configs: Sequence[str | os.PathLike[str]] = ()
    sets: Mapping[str, Any] = field(default_factory=dict)
    backend: str | None = None
    log: Any = None

    def _options(self) -> list[str]:
        options = [item for path in self.configs for item in ("-c", str(Path(path)))]
        options += [item for key, value in self.sets.items() for item in ("--set", f"{key}={value}")]
        return options + (["--backend", self.backend] if self.backend else [])

    def run(self, command: str, *args: str) -> dict[str, Any]:
        """`dogbreed <command> <args> --json` with this project's options; its answer."""
        argv = [sys.executable, "-m", "dogbreed", command, *args, *self._options(), "--json"]
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        (self.log or sys.stderr).write(done.stderr)
        if done.returncode != 0:
            raise StepFailed(command, done.returncode, done.stderr)
        return json.loads(done.stdout)

    def ingest(self, source: str | os.PathLike[str] | None = None, dest: str | None = None) -> dict[str, Any]:
        """Check and store a dataset (a folder, archive, URL, or s3:// prefix ingested in place)."""
        return self.run("ingest", *([str(source)] if source else []), *(["--dest", dest] if dest else []))

    def tune(self) -> dict[str, Any]:
        """Search tune.ranges; the answer has every trial and the best one."""
        return self.run("tune")

    def train(self, from_tuning: str | None = "latest") -> dict[str, Any]:
        """Train with the best parameters of a tuning job ('latest', a name) or, with None, the config's."""
        return self.run("train", *(["--from-tuning", from_tuning] if from_tuning else []))

    def report(self, job: str | None = None) -> dict[str, Any]:
        """report.html of a training job (default: the latest) and its rules' verdicts."""
        return self.run("report", *([job] if job else []))

    def deploy(self, model: str = "latest") -> dict[str, Any]:
        """An endpoint for a model ('latest' trained, or a URI); it expires after deploy.ttl."""
        return self.run("deploy", "--model", model)

    def predict(self, *images: str | os.PathLike[str], top_k: int = 3, endpoint: str | None = None) -> dict[str, Any]:
        """Top-k breeds for photos or folders of photos, from the latest (or the named) endpoint."""
        return self.run("predict", *map(str, images), "--top-k", str(top_k), *(["--endpoint", endpoint] if endpoint else []))

    def transform(
        self,
        *sources: str | os.PathLike[str],
        output: str | os.PathLike[str] = "scores.jsonl",
        model: str = "latest",
        top_k: int = 3,
    ) -> dict[str, Any]:
        """Score photos, folders or an s3:// prefix with no endpoint: one row per image in
        `output` (.csv or .jsonl); a rerun with the same output resumes."""
        return self.run("transform", *map(str, sources), "--output", str(output), "--model", model, "--top-k", str(top_k))

    def status(self) -> dict[str, Any]:
        """What is running or billing now, with its cost per hour."""
        return self.run("status")

    def teardown(self, *names: str, all_: bool = True) -> dict[str, Any]:
        """Delete the named endpoints, or (default) everything this project deployed."""
        return self.run("teardown", *names, *(["--all"] if all_ and not names else []), "--yes")
