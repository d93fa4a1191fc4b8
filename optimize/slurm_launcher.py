"""Three fixes to hydra-submitit-launcher's SLURM launcher (``hydra/launcher=slurm_gpu``).

Hydra takes launchers only from its ``hydra_plugins`` package, so ``SlurmSweep`` (a Hydra
callback in ``optimize/sweep_status.py``) applies them to the stock launcher in the processes
that need them: 1. and 2. in the launching process when the sweep starts, 3. in each SLURM job.

1. **Job states from squeue when the cluster keeps no accounting.** submitit asks ``sacct``
   for the state of jobs that have not written a result; on a cluster with
   ``AccountingStorageType=accounting_storage/none`` (small clusters, ``scripts/local_slurm.sh``)
   sacct fails on every poll, submitit logs a warning each time and a job that ended without
   a result (killed at its time limit, cancelled, exited with code 2 or 3) stays "UNKNOWN":
   the sweep would wait forever. ``SqueueFallbackWatcher`` tries sacct once, and if it cannot
   answer says so in one line and reads ``squeue`` from then on (finished jobs stay listed
   for ``MinJobAge``, 5 minutes by default; a job no longer listed has ended).
2. **Every job ends before the sweep does.** The stock launcher reads results job by job and
   raises at the first job without a result, while later jobs still run. Here the launcher
   waits for all of them; a job that ended without a result is logged in one line (its
   SLURM state, the error its log ends with) and recorded like a job with failed pairs
   (``optimize/failed_jobs.py``), so the sweep exits 1 after every job ran, and the same
   command resumes it.
3. **A job SLURM stops does not fail a pair.** SLURM sends ``USR2`` ``signal_delay_s`` before a
   job's time limit; submitit's handler would then raise inside the running pair (recorded as
   a failed pair) unless the job can be requeued (``max_num_timeout`` > 0). With no requeue,
   the job logs one line and works on. At the limit, on ``scancel`` or when its node fails,
   SLURM sends ``SIGTERM`` to every process of the job (submitit ignores it in Python, but the
   OCR subprocess dies, failing the pair it served); the job stops there in one line
   (``SystemExit``, which no pair catches), before ``SIGKILL`` follows. Every answer is
   committed as its batch finishes, so nothing done is lost.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, Sequence

from hydra.core.utils import JobReturn, JobStatus
from hydra_plugins.hydra_submitit_launcher import submitit_launcher
from omegaconf import open_dict
from submitit.slurm import slurm as submitit_slurm

from optimize.failed_jobs import record_failed_job

log = logging.getLogger(__name__)

# squeue states that are not final, named as submitit's watcher knows them (it treats
# anything but READY, PENDING, RUNNING, UNKNOWN, REQUEUED, COMPLETING, PREEMPTED as done)
_NOT_FINAL = {"CONFIGURING": "RUNNING", "SIGNALING": "RUNNING", "STAGE_OUT": "COMPLETING", "RESIZING": "RUNNING",
              "SUSPENDED": "PENDING", "STOPPED": "PENDING", "REQUEUE_HOLD": "REQUEUED", "REQUEUE_FED": "REQUEUED",
              "SPECIAL_EXIT": "REQUEUED", "RESV_DEL_HOLD": "PENDING"}
GONE = "ENDED"  # a job squeue no longer lists: it ended more than MinJobAge ago


class SqueueFallbackWatcher(submitit_slurm.SlurmInfoWatcher):
    """submitit's job-state poller: sacct while it answers, else squeue (one log line says so)."""

    def __init__(self, delay_s: int = 600) -> None:
        super().__init__(delay_s=delay_s)
        self.source = "sacct"
        self._squeue_failing = False

    def update(self) -> None:
        command = self._make_command()  # None when every registered job is finished
        if command is None:
            return
        self._num_calls += 1
        if self.source == "sacct":
            try:
                proc = subprocess.run(command, capture_output=True, timeout=60, check=False)
                failure = proc.returncode != 0 and (proc.stderr.decode(errors="replace").strip()
                                                    or f"exit status {proc.returncode}")
            except (OSError, subprocess.TimeoutExpired) as err:
                failure = str(err)
            if failure:
                self.source = "squeue"
                # states of a small cluster are polled more often than sacct's 10 minutes
                self._delay_s = min(self._delay_s, 60)
                log.info("SLURM job states come from squeue: sacct cannot report them here (%s)",
                         failure.splitlines()[-1])
            else:
                self._info_dict.update(self.read_info(proc.stdout))
        if self.source == "squeue":
            self._update_from_squeue()
        self._last_status_check = time.time()
        for job_id in self._registered - self._finished:
            if self.is_done(job_id, mode="cache"):
                self._finished.add(job_id)

    def _update_from_squeue(self) -> None:
        command = ["squeue", "--me", "--states=all", "--array", "--noheader", "--format=%i|%T|%N"]
        try:
            proc = subprocess.run(command, capture_output=True, timeout=60, check=True)
        except (OSError, subprocess.SubprocessError) as err:
            # the controller may be restarting: keep the last states, say so once per outage
            if not self._squeue_failing:
                log.warning("squeue failed (%s); job states are kept as last seen until it answers",
                            getattr(err, "stderr", b"").decode(errors="replace").strip() or err)
            self._squeue_failing = True
            return
        if self._squeue_failing:
            log.info("squeue answers again")
        self._squeue_failing = False
        listed = self.read_info("JobID|State|NodeList\n" + proc.stdout.decode(errors="replace"))
        for info in listed.values():
            info["State"] = _NOT_FINAL.get(info["State"], info["State"])
        self._info_dict.update(listed)
        for job_id in self._registered - self._finished:
            if job_id not in listed:  # sbatch returns once the job is listed: not listed now means ended
                self._info_dict[job_id] = {"JobID": job_id, "State": GONE, "NodeList": ""}


def apply_in_launching_process() -> None:
    """Fixes 1. and 2.: job states from squeue when sacct cannot give them, every job waited for."""
    use_squeue_fallback()
    submitit_launcher.SlurmLauncher.launch = _launch


def apply_in_job() -> None:
    """Fix 3., in a SLURM job submitit will not requeue: USR2 is logged, SIGTERM stops the job."""
    signal.signal(signal.SIGUSR2, _time_limit_near)
    signal.signal(signal.SIGTERM, _stopped_by_slurm)


def use_squeue_fallback() -> None:
    """Poll SLURM job states through ``SqueueFallbackWatcher`` in this process."""
    if not isinstance(submitit_slurm.SlurmJob.watcher, SqueueFallbackWatcher):
        submitit_slurm.SlurmJob.watcher = SqueueFallbackWatcher(delay_s=submitit_slurm.SlurmJob.watcher._delay_s)


def _launch(self: submitit_launcher.SlurmLauncher, job_overrides: Sequence[Sequence[str]],
            initial_job_idx: int) -> Sequence[JobReturn]:
    """SlurmLauncher.launch of hydra-submitit-launcher 1.2 but for its end: it read the results job
    by job and raised at the first job without one, while later jobs still ran."""
    import submitit
    from hydra.core.singleton import Singleton
    from hydra.core.utils import filter_overrides
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
    from omegaconf import OmegaConf

    assert self.config is not None and self.hydra_context is not None
    use_squeue_fallback()
    init_keys = {"max_num_timeout", "submitit_folder"}
    executor = submitit.AutoExecutor(cluster=self._EXECUTOR, folder=self.params["submitit_folder"],
                                     slurm_max_num_timeout=self.params.get("max_num_timeout", 0))
    baseparams = set(OmegaConf.structured(BaseQueueConf).keys())
    executor.update_parameters(**{k if k in baseparams else f"{self._EXECUTOR}_{k}": v
                                  for k, v in self.params.items() if k not in init_keys})
    sweep_dir = Path(str(self.config.hydra.sweep.dir))
    log.info("Submitit '%s' sweep output dir : %s", self._EXECUTOR, sweep_dir)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    if "mode" in self.config.hydra.sweep:
        sweep_dir.chmod(int(str(self.config.hydra.sweep.mode), 8))
    job_params = []
    for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
        log.info("\t#%d : %s", idx, " ".join(filter_overrides(overrides)))
        job_params.append((list(overrides), "hydra.sweep.dir", idx, f"job_id_for_{idx}", Singleton.get_state()))
    jobs = executor.map_array(self, *zip(*job_params))

    for job in jobs:  # every job ends (or is ended by SLURM) before any result is read
        job.wait()
    returns = []
    for (overrides, _, idx, _, _), job in zip(job_params, jobs):
        if job.paths.result_pickle.exists():
            returns.append(job.results()[0])  # a job that raised (a bug) fails the sweep as with any launcher
            continue
        sweep_cfg = self.hydra_context.config_loader.load_sweep_config(self.config, overrides)
        with open_dict(sweep_cfg.hydra.job):
            sweep_cfg.hydra.job.num = idx  # as the job itself would have (the folder is ${hydra.job.num} by default)
            sweep_cfg.hydra.job.id = job.job_id
        job_dir = sweep_dir / str(sweep_cfg.hydra.sweep.subdir)
        log.error("job #%d (SLURM job %s) ended without a result, state %s%s; its log: %s. Run the same "
                  "command again to finish it (the pairs it finished and the answers it stored are kept)",
                  idx, job.job_id, job.state, _last_error(job.paths.stderr), job.paths.stderr)
        record_failed_job(job_dir, sweep_dir)
        returns.append(JobReturn(overrides=overrides, working_dir=str(job_dir), status=JobStatus.COMPLETED,
                                 _return_value=float("inf")))
    return returns


def _last_error(stderr: Path) -> str:
    """`: <the last error line>` of a job's log, or nothing."""
    try:
        lines = stderr.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    errors = [ln.strip() for ln in lines if "ERROR" in ln or "Error" in ln]
    return f": {errors[-1][:300]}" if errors else ""


def _time_limit_near(signum: int, frame: Any) -> None:
    log.warning("SLURM says this job's time limit is near (signal %s): it works on until SLURM stops it; "
                "run the same sweep command again to finish the pairs it did not", signal.Signals(signum).name)


def _stopped_by_slurm(signum: int, frame: Any) -> None:
    log.warning("SLURM is stopping this job (%s: its time limit, scancel or a node failure): it stops now; its "
                "finished pairs and stored answers are kept, and the same sweep command finishes it",
                signal.Signals(signum).name)
    raise SystemExit(128 + signum)  # not an Exception: no pair takes it for its own failure
