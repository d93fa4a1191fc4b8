"""The jobs of a sweep whose pairs failed: remembered in this process and listed in the sweep folder.

Written by the entry point (a job with failed pairs) and by the SLURM launcher fixes (a
job SLURM killed, ``optimize/slurm_launcher.py``); read back by ``SweepExitStatus``
(``optimize/sweep_status.py``) when the sweep ends. Its own module, so that those two
import it and not each other.
"""

from __future__ import annotations

import os
from pathlib import Path

FAILED_JOBS_FILE = "failed_jobs.txt"

# Output folders of jobs whose pairs failed, as far as this process knows.
failed_jobs: list[str] = []


def record_failed_job(out_dir: Path, sweep_dir: Path | None) -> None:
    """Remember a job with failed pairs here and, in a sweep, in the sweep folder's list."""
    failed_jobs.append(str(out_dir))
    if sweep_dir is not None:
        sweep_dir.mkdir(parents=True, exist_ok=True)
        # one short O_APPEND write per job: parallel jobs never interleave within a line
        fd = os.open(sweep_dir / FAILED_JOBS_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{out_dir}\n".encode())
        finally:
            os.close(fd)
