"""Sweeps through a real SLURM cluster: the one-node cluster of scripts/local_slurm.sh, the CPU
answer model, `hydra/launcher=slurm_gpu` with the GPU request overridden to none, one store per
job and one results folder.

* a sweep in which two jobs cannot reach their answer model: every job runs, the good jobs'
  trials are in their stores exactly once, the merged files and report are written, exit 1;
* a job killed by SLURM at its time limit, one cancelled mid-pair: re-running the same command
  finishes them, no stored answer computed again, no trial twice;
* a node that fails (set down, then resumed) mid-pair: SLURM requeues the job, which resumes
  from its store; the sweep ends 0 without being run again.

Slow (9-13 minutes on 2 cores) and needs root (the script installs slurm-wlm and munge
with apt-get if missing and starts the daemons):
`.venv/bin/python -m pytest -m slow tests/test_slurm_real.py`. A cluster the tests started is
stopped at the end; one already running is left running.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from models.llama_server import free_port
from tests.cli_helpers import REPO, cli_env
from scripts.default_models import models_dir

pytestmark = pytest.mark.slow
SCRIPT = REPO / "scripts" / "local_slurm.sh"
DEMO = REPO / "tasks" / "demo" / "task.csv"
MODEL_NAME = "Qwen2.5-0.5B-OCR"


def _script(command: str, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), command], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def cluster():
    """The node's name, once the cluster takes jobs; stopped afterwards if this fixture started it."""
    if os.geteuid() != 0:
        pytest.skip("needs root: scripts/local_slurm.sh installs slurm-wlm and munge and starts their daemons")
    if shutil.which("sbatch") is None and shutil.which("apt-get") is None:
        pytest.skip("SLURM is not installed and there is no apt-get to install it")
    if not (models_dir() / "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf").is_file():
        pytest.skip(f"the CPU answer model's weights are not in {models_dir()} (run scripts/setup.sh)")
    was_running = _script("status", 60).returncode == 0
    started = time.monotonic()
    up = _script("start", 900)  # apt-get install on a fresh machine included
    if up.returncode == 2 and "refusing" in up.stderr:
        pytest.skip(up.stderr.strip())  # a slurm.conf this script did not write: a real cluster's
    assert up.returncode == 0, up.stdout + up.stderr
    print(f"cluster up in {time.monotonic() - started:.1f} s: {up.stdout.strip()}")
    node = subprocess.run(["sinfo", "-h", "-o", "%N"], capture_output=True, text=True, check=True).stdout.strip()
    yield node
    subprocess.run(["scontrol", "update", f"nodename={node}", "state=resume"], capture_output=True, check=False)
    if not was_running:
        down = _script("stop", 180)
        assert down.returncode == 0, down.stdout + down.stderr


def _conf(tmp: Path, dead_url: str | None = None) -> Path:
    """Model configs for the sweep: the CPU model on one thread (the job's one CPU) and, if asked,
    an OpenAI-compatible model at a port where nothing listens."""
    conf = tmp / "conf" / "model"
    conf.mkdir(parents=True)
    (conf / "cpu_1thread.yaml").write_text("defaults:\n  - ocr_llm\n  - _self_\nn_threads: 1\n")
    if dead_url:
        (conf / "dead_endpoint.yaml").write_text(f"defaults:\n  - openai_vlm\n  - _self_\napi_base: {dead_url}\n"
                                                 "num_retries: 1\nretry_initial_wait_s: 0.1\n")
    return conf.parent


def _sweep_args(tmp: Path, *overrides: str) -> list[str]:
    return [sys.executable, "-m", "optimize", "-m", f"hydra.searchpath=[file://{tmp / 'conf'}]",
            "advisor=none", f"task.csv={DEMO}", f"paths.models={models_dir()}",
            f"paths.store={tmp}/stores/${{hydra:job.num}}.sqlite", f"paths.results_dir={tmp / 'results'}",
            f"hydra.sweep.dir={tmp / 'sweep'}", "report=true",
            "hydra/launcher=slurm_gpu", "hydra.launcher.gpus_per_node=null", "hydra.launcher.cpus_per_task=1",
            "hydra.launcher.mem_gb=4", *overrides]


def _run(args: list[str], timeout: float) -> tuple[subprocess.CompletedProcess, float]:
    started = time.monotonic()
    proc = subprocess.run(args, cwd=REPO, env=cli_env(), capture_output=True, text=True, timeout=timeout)
    return proc, time.monotonic() - started


def _slurm_ids(sweep: Path) -> dict[int, str]:
    """Job number -> SLURM job id of the latest submission of this sweep (from submitit's folders)."""
    ids: dict[int, str] = {}
    folders = sorted((p for p in (sweep / ".submitit").iterdir() if p.is_dir()), key=lambda p: [int(x) for x in p.name.split("_")])
    for folder in folders:
        _, _, index = folder.name.partition("_")
        ids[int(index or 0)] = folder.name
    return ids


@pytest.fixture
def cancel_leftovers(tmp_path):
    """Cancel this test's SLURM jobs if it ends early (a failed assertion, a timeout)."""
    yield
    ids = list(_slurm_ids(tmp_path / "sweep").values()) if (tmp_path / "sweep" / ".submitit").is_dir() else []
    if ids:
        subprocess.run(["scancel", *ids], capture_output=True, check=False)


def _store(tmp: Path, job: int) -> sqlite3.Connection:
    return sqlite3.connect(tmp / "stores" / f"{job}.sqlite", timeout=30)


def _count(db: sqlite3.Connection, sql: str) -> int:
    try:
        return db.execute(sql).fetchone()[0] or 0
    except sqlite3.OperationalError:  # the job has not made its tables yet
        return 0


def _check_trials_once(tmp: Path, job: int) -> str:
    """The job's trials.jsonl and its store's trials are the same records, each once. Returns the run id."""
    logged = [json.dumps(json.loads(line), sort_keys=True, ensure_ascii=False)
              for line in (tmp / "sweep" / str(job) / "trials.jsonl").read_text(encoding="utf-8").splitlines()]
    assert logged, f"job {job} logged no trial"
    run_id = json.loads(logged[0])["run_id"]
    stored = [json.dumps(json.loads(r), sort_keys=True, ensure_ascii=False)
              for (r,) in _store(tmp, job).execute("SELECT record FROM trials WHERE run_id = ?", (run_id,))]
    assert sorted(logged) == sorted(stored)  # none missing, none extra
    assert len(set(stored)) == len(stored)  # none twice
    return run_id


def _check_no_answer_computed_twice(tmp: Path, job: int, kills: int) -> int:
    """Every answer the model computed was stored once: the batches timed (one timing row per
    computed batch, written right after the batch's answers) add up to no more than the answers
    stored. A stored answer computed again would count twice. Returns the answers stored."""
    db = _store(tmp, job)
    stored = _count(db, "SELECT COUNT(*) FROM answers")
    computed = _count(db, "SELECT SUM(n) FROM timings WHERE kind = 'answer'")
    assert computed <= stored, f"job {job}: {computed} answers computed for {stored} stored"
    # a kill between a batch's answers and its timing row loses at most that batch's timing
    batch = 8
    assert stored - computed <= kills * batch, (stored, computed)
    return stored


def test_sweep_through_slurm_with_a_job_whose_endpoint_is_dead(cluster, tmp_path, cancel_leftovers):
    """4 jobs as one SLURM array: 2 whose answer model cannot be reached (jobs 0 and 1, so the first
    job fails first), 2 with the CPU model. Every job runs; exit 1; the good jobs' results land."""
    pair = "Паспорт Фамилия"
    url = f"http://127.0.0.1:{free_port()}/v1"
    _conf(tmp_path, dead_url=url)
    args = _sweep_args(tmp_path, "model=dead_endpoint,cpu_1thread", "optimizer=manual,fewshot",
                       "budget.evaluations_per_pair=9", f'pairs=["{pair}"]', "hydra.launcher.timeout_min=30")
    proc, took = _run(args, timeout=1800)
    print(f"sweep took {took:.0f} s")
    err = proc.stdout + proc.stderr  # the launching process logs to stdout (Hydra's own log)
    assert proc.returncode == 1, err[-4000:]
    sweep = tmp_path / "sweep"

    # the jobs went through SLURM, as asked: one CPU, no GPU, 4 GB
    assert len({name.split("_")[0] for name in _slurm_ids(sweep).values()}) == 1  # one array
    scripts = [p.read_text() for p in (sweep / ".submitit").rglob("*submission*.sh")]
    text = next(t for t in scripts if "--array=0-3" in t)
    assert "--cpus-per-task=1" in text and "--mem=4GB" in text and "gpu" not in text, text

    # status polling: one line saying where states come from, no sacct warning per poll
    assert err.count("SLURM job states come from squeue") == 1, err[-4000:]
    assert "Bypassing sacct error" not in err and "status may be inaccurate" not in err

    # the two dead jobs: one line each naming the job, its state and the endpoint it could not reach
    failed_lines = [ln for ln in err.splitlines() if "ended without a result" in ln]
    assert len(failed_lines) == 2, err[-4000:]
    assert all("state FAILED" in ln and url in ln for ln in failed_lines), failed_lines
    listed = (sweep / "failed_jobs.txt").read_text().split()
    assert sorted(Path(p).name for p in listed) == ["0", "1"]

    # the good jobs: finished their pair, every trial once
    run_ids = set()
    for job in (2, 3):
        db = _store(tmp_path, job)
        assert db.execute("SELECT pair FROM finished_pairs").fetchall() == [(pair,)]
        run_ids.add(_check_trials_once(tmp_path, job))
        assert (sweep / str(job) / f"{MODEL_NAME}_sep_none.csv").is_file()
        assert (sweep / str(job) / "run.json").is_file()
    assert len(run_ids) == 2

    # the shared results folder: both runs merged, OptimalPrompts with its book, the report
    (task,) = [p for p in (tmp_path / "results").iterdir() if p.is_dir()]
    assert len(list((task / "runs").iterdir())) == 2
    with (task / f"{MODEL_NAME}_sep_OptimalPrompts.csv").open(encoding="utf-8") as fh:
        (row,) = list(csv.DictReader(fh))
    assert row["doc type question type"] == pair and row["run_id"] in run_ids
    assert (task / f"{MODEL_NAME}_sep_OptimalPrompts.book.json").is_file()
    report = (task / "report.html").read_text(encoding="utf-8")
    assert pair in report and "<img" in report


def _wait_mid_pair(tmp: Path, job: int, sweep: subprocess.Popen, deadline_s: float = 600) -> int:
    """Until the job has stored answers but finished no pair: it is in the middle of its first pair.
    Returns the answers stored by then."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline and sweep.poll() is None:
        if (tmp / "stores" / f"{job}.sqlite").exists():
            db = _store(tmp, job)
            answers = _count(db, "SELECT COUNT(*) FROM answers")
            finished = _count(db, "SELECT COUNT(*) FROM finished_pairs")
            db.close()
            assert finished == 0, "the job finished a pair before it was caught mid-pair"
            if answers:
                return answers
        time.sleep(1)
    out, err = sweep.communicate(timeout=60) if sweep.poll() is not None else ("", "")
    raise AssertionError(f"job {job} stored no answer (sweep exit {sweep.poll()}): {(out + err)[-3000:]}")


def _job_logs(tmp: Path, pattern: str = "*/*_log.*") -> str:
    return "".join(p.read_text(errors="replace") for p in (tmp / "sweep" / ".submitit").glob(pattern))


def test_a_job_past_its_time_limit_finishes_when_the_sweep_is_run_again(cluster, tmp_path, cancel_leftovers):
    """A job needing several minutes, limited to 1: SLURM stops it (TIMEOUT); running the same command
    again, as often as the limit makes necessary, finishes it with no stored answer computed again
    and no trial twice."""
    _conf(tmp_path)
    pairs = '["Паспорт Фамилия","Паспорт Пол","СНИЛС Номер СНИЛС","СНИЛС Фамилия"]'
    args = _sweep_args(tmp_path, "model=cpu_1thread", "optimizer=manual", "budget.evaluations_per_pair=6",
                       f"pairs={pairs}", "hydra.launcher.timeout_min=1")
    attempts: list[str] = []
    for _ in range(8):  # the same command; each run gives the job another minute
        proc, took = _run(args, timeout=600)
        said = proc.stdout + proc.stderr
        attempts.append(said)
        print(f"run {len(attempts)}: exit {proc.returncode} in {took:.0f} s")
        if proc.returncode == 0:
            break
        (line,) = [ln for ln in said.splitlines() if "ended without a result" in ln]
        assert proc.returncode == 1 and "state TIMEOUT" in line and "Run the same command again" in line, said[-4000:]
        if len(attempts) == 1:
            print(line)
    assert len(attempts) > 1, "the job finished within its 1-minute limit: give it more work"
    assert proc.returncode == 0, f"not finished after {len(attempts)} runs"
    assert not (tmp_path / "sweep" / "failed_jobs.txt").exists()  # the last run's job finished

    logs = _job_logs(tmp_path)
    # SLURM's early signal (USR2, 120 s before the limit) was logged; at the limit its SIGTERM
    # stopped the job (the OCR subprocess got it too) and failed no pair
    assert "time limit is near (signal SIGUSR2)" in logs and "SLURM is stopping this job (SIGTERM" in logs
    assert "failed:" not in logs
    assert "already finished in an earlier attempt of this run: not redone" in logs
    db = _store(tmp_path, 0)
    assert db.execute("SELECT COUNT(*) FROM finished_pairs").fetchone()[0] == 4
    _check_no_answer_computed_twice(tmp_path, 0, kills=len(attempts) - 1)
    _check_trials_once(tmp_path, 0)
    summary = json.loads((tmp_path / "sweep" / "0" / "run.json").read_text())
    assert summary["failed_pairs"] == [] and summary["resumed_pairs"], summary
    (task,) = [p for p in (tmp_path / "results").iterdir() if p.is_dir()]
    with (task / f"{MODEL_NAME}_sep_OptimalPrompts.csv").open(encoding="utf-8") as fh:
        assert len(list(csv.DictReader(fh))) == 4


def test_a_job_cancelled_mid_pair_finishes_when_the_sweep_is_run_again(cluster, tmp_path, cancel_leftovers):
    """scancel in the middle of a pair: state CANCELLED, exit 1; the same command finishes the pair
    from the answers it had stored (cache hits), computing none of them again."""
    _conf(tmp_path)
    args = _sweep_args(tmp_path, "model=cpu_1thread", "optimizer=manual", "budget.evaluations_per_pair=6",
                       'pairs=["Паспорт Фамилия"]', "hydra.launcher.timeout_min=30")
    first = subprocess.Popen(args, cwd=REPO, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_mid_pair(tmp_path, 0, first)
        subprocess.run(["scancel", _slurm_ids(tmp_path / "sweep")[0]], check=True, timeout=60)
        stored_at_cancel = _count(_store(tmp_path, 0), "SELECT COUNT(*) FROM answers")
        out, err = first.communicate(timeout=600)
    finally:
        first.kill()
    said = out + err
    assert first.returncode == 1, said[-4000:]
    (line,) = [ln for ln in said.splitlines() if "ended without a result" in ln]
    print(line)
    assert "state CANCELLED" in line
    assert "SLURM is stopping this job (SIGTERM" in _job_logs(tmp_path) and "failed:" not in _job_logs(tmp_path)

    again, took = _run(args, timeout=900)
    print(f"run 2: exit {again.returncode} in {took:.0f} s")
    assert again.returncode == 0, (again.stdout + again.stderr)[-4000:]
    db = _store(tmp_path, 0)
    assert db.execute("SELECT COUNT(*) FROM finished_pairs").fetchone()[0] == 1
    _check_no_answer_computed_twice(tmp_path, 0, kills=1)
    _check_trials_once(tmp_path, 0)
    summary = json.loads((tmp_path / "sweep" / "0" / "run.json").read_text())
    # the pair was redone from the answers stored before the cancel, each a cache hit
    assert summary["cost"]["cache_hits_this_attempt"] >= stored_at_cancel > 0, summary
    assert summary["failed_pairs"] == []


def test_a_failed_node_requeues_the_job_and_it_resumes(cluster, tmp_path, cancel_leftovers):
    """The node is set down mid-pair and resumed: SLURM requeues the job (JobRequeue=1, its default),
    the job starts again once the node is back and resumes from its store; the sweep ends 0."""
    _conf(tmp_path)
    args = _sweep_args(tmp_path, "model=cpu_1thread", "optimizer=manual", "budget.evaluations_per_pair=9",
                       'pairs=["Паспорт Фамилия"]', "hydra.launcher.timeout_min=30")
    sweep = subprocess.Popen(args, cwd=REPO, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_mid_pair(tmp_path, 0, sweep)
        job_id = _slurm_ids(tmp_path / "sweep")[0]
        subprocess.run(["scontrol", "update", f"nodename={cluster}", "state=down", "reason=vlm-prompt-opt test"],
                       check=True, timeout=60)
        time.sleep(5)
        during = subprocess.run(["scontrol", "show", "job", job_id], capture_output=True, text=True).stdout
        subprocess.run(["scontrol", "update", f"nodename={cluster}", "state=resume"], check=True, timeout=60)
        out, err = sweep.communicate(timeout=900)
        err = out + err
    finally:
        sweep.kill()
        subprocess.run(["scontrol", "update", f"nodename={cluster}", "state=resume"], capture_output=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # the sweep has its result; SLURM may still be ending the job
        after = subprocess.run(["scontrol", "show", "job", job_id], capture_output=True, text=True).stdout
        if "JobState=RUNNING" not in after and "JobState=COMPLETING" not in after:
            break
        time.sleep(2)
    print("while the node was down:", " ".join(ln.strip() for ln in during.splitlines() if "JobState" in ln))
    print("after:", " ".join(ln.strip() for ln in after.splitlines() if "JobState" in ln or "Restarts" in ln))
    assert sweep.returncode == 0, err[-4000:]
    assert "JobState=PENDING" in during and "Restarts=1" in during, during  # requeued, waiting for a node
    assert "JobState=COMPLETED" in after and "Restarts=1" in after, after
    logs = _job_logs(tmp_path)
    assert logs.count("Starting with JobEnvironment") == 2  # the same job ran twice
    assert "DUE TO NODE FAILURE" in logs and "failed:" not in logs
    db = _store(tmp_path, 0)
    assert db.execute("SELECT COUNT(*) FROM finished_pairs").fetchone()[0] == 1
    _check_no_answer_computed_twice(tmp_path, 0, kills=1)
    _check_trials_once(tmp_path, 0)
