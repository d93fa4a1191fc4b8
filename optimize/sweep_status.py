"""The exit status of a sweep whose jobs may run in other processes.

``python -m optimize`` exits 1 when some job's pairs failed (their rows say why), after
the whole sweep, so one failed job does not stop the others. Jobs of Hydra's basic
launcher run in the entry point's process and are seen directly; jobs of the joblib or
submitit (SLURM) launchers run in worker processes or on other machines, so every job
with failed pairs also appends its folder to ``failed_jobs.txt`` in the sweep folder
(``optimize/failed_jobs.py``), and ``SweepExitStatus`` (a Hydra callback, run in the
launching process) reads it back when the sweep ends. ``SlurmSweep`` (a Hydra callback too)
fixes the SLURM launcher so that a job SLURM killed is waited for and counted the same way
(``optimize/slurm_launcher.py``, which imports ``optimize/failed_jobs.py``, never this module).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from optimize.failed_jobs import FAILED_JOBS_FILE, failed_jobs

SLURM_LAUNCHER = "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"


class SweepExitStatus(Callback):
    """Collects the failed jobs of a multirun into ``failed_jobs`` of the launching process."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        # a reused sweep folder must not report an earlier sweep's failures
        (Path(config.hydra.sweep.dir) / FAILED_JOBS_FILE).unlink(missing_ok=True)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        listed = Path(config.hydra.sweep.dir) / FAILED_JOBS_FILE
        if listed.is_file():
            for line in listed.read_text(encoding="utf-8").splitlines():
                if line and line not in failed_jobs:
                    failed_jobs.append(line)


class SlurmSweep(Callback):
    """Fixes to hydra-submitit-launcher's SLURM launcher (``optimize/slurm_launcher.py``): job
    states from squeue on a cluster without accounting, every job waited for and one killed by
    SLURM reported as failed, SLURM's signals to a job (time limit near, SIGTERM) failing no pair."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        if config.hydra.launcher.get("_target_") == SLURM_LAUNCHER:
            from optimize.slurm_launcher import apply_in_launching_process

            apply_in_launching_process()

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        # in a SLURM job that submitit will not requeue at its time limit
        if os.environ.get("SUBMITIT_EXECUTOR") == "slurm" and not config.hydra.launcher.get("max_num_timeout"):
            from optimize.slurm_launcher import apply_in_job  # USR2 logged, SIGTERM stops the run

            apply_in_job()
