"""Runs one local training job detached from the CLI, the way SageMaker's agent would.

    python -m dogbreed.backends.job_supervisor <job dir>

It reads request.json (argv, env), runs train.py with its output appended to train.log,
and keeps status.json current (InProgress -> Completed | Failed | Stopped). On success it
packs model/ into model.tar.gz exactly as SageMaker does (files at the archive's root).
Being its own session, it survives the CLI (`--no-wait`), and a later `dogbreed` process
learns the outcome from status.json. SIGTERM/SIGINT stop the job cleanly: the signal is
passed on to train.py, whose per-epoch checkpoints make the next run resume.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tarfile
from datetime import datetime, timezone
from pathlib import Path

from dogbreed.backends.job_layout import JobLayout


def _now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def pack_model(model_dir: Path, target: Path) -> None:
    """model.tar.gz with model.pth, classes.json, code/... at its root (SageMaker's layout)."""
    tmp = target.with_name(target.name + ".tmp")
    # float32 weights barely compress: level 1 is ~25x faster than the default 9 for a
    # ~25% larger file, and every tuning trial pays this (benchmarks/bench_tuning.py).
    with tarfile.open(tmp, "w:gz", compresslevel=1) as archive:
        for path in sorted(model_dir.rglob("*")):
            if "__pycache__" in path.parts:
                continue
            archive.add(path, arcname=str(path.relative_to(model_dir)), recursive=False)
    os.replace(tmp, target)


def last_error(log: Path, lines: int = 40) -> str:
    """The most telling line of a failed job's log: its last exception, else its last line."""
    try:
        tail = log.read_text(errors="replace").splitlines()[-lines:]
    except FileNotFoundError:
        return "no log"
    for line in reversed(tail):
        stripped = line.strip()
        if stripped and ("Error" in stripped or "error:" in stripped or "Exception" in stripped):
            return stripped
    return next((line.strip() for line in reversed(tail) if line.strip()), "no output")


def supervise(layout: JobLayout) -> int:
    request = json.loads(layout.request_file.read_text())
    env = {**os.environ, **request["env"]}
    with layout.log.open("ab", buffering=0) as log:
        log.write(f"[dogbreed] {_now()} starting: {' '.join(request['argv'])}\n".encode())
        child = subprocess.Popen(
            request["argv"], cwd=request["cwd"], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        layout.write_status(state="InProgress", supervisor_pid=os.getpid(), pid=child.pid, started_at=_now())
        stopping = {"signal": None}

        def stop(signum: int, _frame: object) -> None:
            stopping["signal"] = signum
            try:
                os.killpg(child.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        code = child.wait()
        ended = _now()
        log.write(f"[dogbreed] {ended} train.py exited with code {code}\n".encode())

    if stopping["signal"] is not None:
        layout.write_status(state="Stopped", exit_code=code, ended_at=ended, failure="stopped by request")
        return 0
    if code != 0:
        layout.write_status(state="Failed", exit_code=code, ended_at=ended, failure=last_error(layout.log))
        return 0
    try:
        pack_model(layout.model_dir, layout.model_tar)
    except OSError as exc:
        layout.write_status(state="Failed", exit_code=code, ended_at=ended, failure=f"packing model.tar.gz: {exc}")
        return 0
    layout.write_status(state="Completed", exit_code=code, ended_at=ended)
    return 0


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit("usage: python -m dogbreed.backends.job_supervisor JOB_DIR")
    sys.exit(supervise(JobLayout(Path(sys.argv[1]))))


if __name__ == "__main__":
    main()
