"""breedkit's atomic writes when the file system refuses: the real OSError, nothing left behind."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tests.source_dir.conftest import SOURCE_DIR

# torch.save into a file under a 4 KiB file size limit (RLIMIT_FSIZE, what `ulimit -f` sets;
# Python ignores SIGXFSZ, so the write fails with EFBIG as it would on a full disk with ENOSPC).
WRITER = textwrap.dedent(
    """
    import resource, sys
    from pathlib import Path
    import torch
    from breedkit.atomic import atomic_write
    target = Path(sys.argv[1])
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
    try:
        atomic_write(target, lambda handle: torch.save({"features": torch.zeros(10_000)}, handle))
    except OSError as exc:
        print(f"OSError {exc.errno} {exc.filename}")
    """
)


def test_a_refused_write_raises_the_file_systems_error_naming_the_file(tmp_path):
    """torch.save reported a full disk or a size limit as `RuntimeError: ... unexpected pos
    5056 vs 4950`, which a job's failure line then carried; now it is the OSError itself."""
    target = tmp_path / "cache" / "train.view0.pt"
    result = subprocess.run(
        [sys.executable, "-c", WRITER, str(target)],
        cwd=SOURCE_DIR, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"OSError 27 {target}"
    assert list(target.parent.iterdir()) == []  # no temp file, no partial file
