"""Job states of a SLURM sweep without accounting (optimize/slurm_launcher.py), with stand-in
`sacct` and `squeue` commands: one line says states come from squeue, no warning per poll, a
job squeue no longer lists has ended, a passing squeue failure keeps the last states.
The real cluster: tests/test_slurm_real.py (slow)."""

import logging
import os
import stat

import pytest

from optimize.slurm_launcher import GONE, SqueueFallbackWatcher


@pytest.fixture
def fake_slurm(tmp_path, monkeypatch):
    """`sacct` and `squeue` on PATH that print (and exit with) what the test writes in files."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("sacct", "squeue"):
        script = bin_dir / name
        script.write_text(f'#!/bin/sh\necho "$@" >> {tmp_path}/{name}.calls\ncat {tmp_path}/{name}.out\n'
                          f'cat {tmp_path}/{name}.err >&2\nexit $(cat {tmp_path}/{name}.rc)\n')
        script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")

    def answer(name, out="", err="", rc=0):
        for suffix, text in (("out", out), ("err", err), ("rc", str(rc))):
            (tmp_path / f"{name}.{suffix}").write_text(text)

    def calls(name):
        path = tmp_path / f"{name}.calls"
        return path.read_text().splitlines() if path.exists() else []

    answer("sacct", err="Slurm accounting storage is disabled\n", rc=1)
    answer("squeue")
    return answer, calls


def _watcher(*job_ids):
    watcher = SqueueFallbackWatcher(delay_s=600)
    for job_id in job_ids:
        watcher.register_job(job_id)
    return watcher


def test_without_accounting_states_come_from_squeue_said_once(fake_slurm, caplog):
    answer, calls = fake_slurm
    answer("squeue", out="7_0|RUNNING|node1\n7_1|PENDING|\n8|CONFIGURING|node1\n")
    watcher = _watcher("7_0", "7_1", "8")
    caplog.set_level(logging.DEBUG)
    watcher.update()
    assert [watcher.get_state(j, mode="cache") for j in ("7_0", "7_1", "8")] == ["RUNNING", "PENDING", "RUNNING"]
    assert watcher.source == "squeue" and watcher._delay_s == 60

    # 7_0 done, 7_1 purged from squeue (ended long ago), 8 suspended (not over)
    answer("squeue", out="7_0|TIMEOUT|node1\n8|SUSPENDED|node1\n")
    for _ in range(3):
        watcher.update()
    assert watcher.get_state("7_0", mode="cache") == "TIMEOUT" and watcher.is_done("7_0", mode="cache")
    assert watcher.get_state("7_1", mode="cache") == GONE and watcher.is_done("7_1", mode="cache")
    assert watcher.get_state("8", mode="cache") == "PENDING" and not watcher.is_done("8", mode="cache")

    assert len(calls("sacct")) == 1  # tried once, never again
    assert len(calls("squeue")) == 4
    said = [r for r in caplog.records if "come from squeue" in r.getMessage()]
    assert len(said) == 1 and said[0].levelno == logging.INFO
    assert "accounting storage is disabled" in said[0].getMessage()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_failing_squeue_keeps_the_last_states_and_warns_once(fake_slurm, caplog):
    answer, _ = fake_slurm
    answer("squeue", out="5|RUNNING|node1\n")
    watcher = _watcher("5")
    watcher.update()
    answer("squeue", err="slurm_load_jobs error: Unable to contact slurm controller\n", rc=1)
    caplog.set_level(logging.INFO)
    for _ in range(3):
        watcher.update()
    assert watcher.get_state("5", mode="cache") == "RUNNING"  # not taken for ended
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "Unable to contact slurm controller" in warnings[0].getMessage()
    answer("squeue", out="5|COMPLETED|node1\n")
    watcher.update()
    assert watcher.is_done("5", mode="cache")
    assert any("squeue answers again" in r.getMessage() for r in caplog.records)


def test_with_accounting_sacct_is_used(fake_slurm):
    answer, calls = fake_slurm
    answer("sacct", out="JobID|State|NodeList\n9|RUNNING|node1\n9.batch|RUNNING|node1\n")
    watcher = _watcher("9")
    watcher.update()
    answer("sacct", out="JobID|State|NodeList\n9|COMPLETED|node1\n")
    watcher.update()
    assert watcher.source == "sacct" and watcher.is_done("9", mode="cache")
    assert len(calls("sacct")) == 2 and calls("squeue") == []
