"""Starts one job through WarmStart, as a tuning worker does, and exits at once.

    python tests/backends/local_training/warm_driver.py JOB_DIR SOURCE_DIR ENTRY_POINT [exec]

The job's request.json must exist. Prints {"driver_pid", "warm_seconds"} as JSON. With
`exec`, the same job goes through the plain launcher instead, for side-by-side checks.
The test reads the outcome from the job folder: the supervisor outlives this process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from dogbreed.backends.job_layout import JobLayout
from dogbreed.backends.local_tuning.warm_start import WarmStart


def main() -> None:
    job_dir, source_dir, entry = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    layout = JobLayout(job_dir)
    layout.write_status(state="Starting")
    if sys.argv[4:] == ["exec"]:
        subprocess.Popen(
            [sys.executable, "-m", "dogbreed.backends.job_supervisor", str(job_dir)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        print(json.dumps({"driver_pid": os.getpid(), "warm_seconds": None}))
        return
    launcher = WarmStart(source_dir, entry)
    seconds = launcher.warm_up()
    request = json.loads(layout.request_file.read_text())
    assert launcher.forks(request), "the test's request should be forkable"
    lock = layout.lock()  # as LocalTraining.start_training: the supervisor keeps it
    try:
        launcher.start_supervisor(layout, lock)
    finally:
        os.close(lock)
    print(json.dumps({"driver_pid": os.getpid(), "warm_seconds": seconds}))


if __name__ == "__main__":
    main()
