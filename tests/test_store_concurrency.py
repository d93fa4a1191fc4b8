"""One store shared by several processes: no trial lost or doubled, one process per run id."""

import json
import os
import sqlite3
import subprocess
import sys
import time

import pytest

from optimize.answer_store import AnswerStore, RunLeaseHeld, _machine_identity
from tests.cli_helpers import REPO, cli_args, cli_env, run_cli
from tests.task_factory import make_task


def _store_trials(store_path, run_id):
    db = sqlite3.connect(store_path)
    rows = db.execute("SELECT pair, seq, record FROM trials WHERE run_id = ? ORDER BY pair, seq", (run_id,)).fetchall()
    db.close()
    return rows


def _check_trials_exactly_once(store_path, out_dir):
    """The store holds exactly the run's trials.jsonl, each once, numbered without gaps."""
    logged = [json.loads(line) for line in (out_dir / "trials.jsonl").read_text().splitlines()]
    run_id = logged[0]["run_id"]
    stored = _store_trials(store_path, run_id)
    by_pair = {}
    for pair, seq, record in stored:
        by_pair.setdefault(pair, []).append(seq)
    assert all(seqs == list(range(len(seqs))) for seqs in by_pair.values()), by_pair
    key = lambda r: json.dumps(r, sort_keys=True)  # noqa: E731
    assert sorted(key(json.loads(r)) for _, _, r in stored) == sorted(key(r) for r in logged)
    assert len({key(r) for r in logged}) == len(logged)
    return run_id, len(logged)


def _popen(tmp_path, data, out, *overrides):
    return subprocess.Popen(cli_args(tmp_path, data, *overrides, out=out), cwd=REPO, env=cli_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_two_different_runs_at_once_on_one_store(tmp_path):
    data = make_task(tmp_path / "data", n_images=10)
    slow = ("model.delay_s=0.05", "model.batch_size=1")
    a = _popen(tmp_path, data, "a", *slow, "split.seed=1")
    b = _popen(tmp_path, data, "b", *slow, "split.seed=2")
    for proc in (a, b):
        _, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err
    run_a, n_a = _check_trials_exactly_once(tmp_path / "store.sqlite", tmp_path / "a")
    run_b, n_b = _check_trials_exactly_once(tmp_path / "store.sqlite", tmp_path / "b")
    assert run_a != run_b and n_a == n_b == 2 * (4 + 1)  # 2 pairs x (4 candidates on val + winner on test)


def test_second_attempt_of_a_live_run_is_refused_then_waits(tmp_path):
    data = make_task(tmp_path / "data", n_images=10)
    calls = tmp_path / "calls.log"
    slow = (f"model.calls_log={calls}", "model.delay_s=0.2", "model.batch_size=1")
    first = _popen(tmp_path, data, "first", *slow)
    deadline = time.time() + 60
    while not (calls.exists() and calls.read_text()) and time.time() < deadline:
        time.sleep(0.05)
    second = run_cli(tmp_path, data, *slow, out="second")  # same command: same run id
    assert second.returncode == 3, second.stderr
    assert f"is already being run by pid {first.pid}" in second.stderr and "lease_wait_s" in second.stderr
    assert "Traceback" not in second.stderr

    third = _popen(tmp_path, data, "third", *slow, "lease_wait_s=120")  # waits for the first to finish
    _, err = first.communicate(timeout=180)
    assert first.returncode == 0, err
    _, err = third.communicate(timeout=180)
    assert third.returncode == 0, err
    assert err.count("already finished in an earlier attempt") == 2  # nothing redone
    _check_trials_exactly_once(tmp_path / "store.sqlite", tmp_path / "first")
    assert (tmp_path / "third/trials.jsonl").read_text() == (tmp_path / "first/trials.jsonl").read_text()


def test_lease_refuses_a_live_holder_and_frees_a_dead_or_stale_one(tmp_path):
    store = AnswerStore(tmp_path / "s.sqlite")
    lease = store.acquire_run("r1", ttl_s=60)
    with pytest.raises(RunLeaseHeld, match=f"pid {os.getpid()}"):
        AnswerStore(tmp_path / "s.sqlite").acquire_run("r1")
    other = store.acquire_run("r2")  # another run id is independent
    lease.release()
    other.release()
    store.acquire_run("r1").release()  # released: free again

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    now = time.time()
    db = sqlite3.connect(tmp_path / "s.sqlite")
    with db:  # a killed holder on this host, and a holder elsewhere that stopped renewing
        db.execute("INSERT INTO run_leases VALUES ('dead', 'x', ?, ?, 'start', ?, ?)",
                   (_machine_identity()[0], dead.pid, now, now))
        db.execute("INSERT INTO run_leases VALUES ('stale', 'y', 'elsewhere', 1, 'start', ?, ?)",
                   (now - 500, now - 500))
        db.execute("INSERT INTO run_leases VALUES ('remote', 'z', 'elsewhere', 1, 'start', ?, ?)", (now, now))
    db.close()
    store.acquire_run("dead").release()
    store.acquire_run("stale", ttl_s=60).release()
    with pytest.raises(RunLeaseHeld, match="on elsewhere"):
        store.acquire_run("remote", ttl_s=60)


def test_writes_with_a_lost_lease_are_refused(tmp_path):
    store = AnswerStore(tmp_path / "s.sqlite")
    lease = store.acquire_run("r", ttl_s=60)
    store.append_trial("r", "p", {"a": 1}, lease=lease)
    db = sqlite3.connect(tmp_path / "s.sqlite")
    with db:
        db.execute("UPDATE run_leases SET holder = 'someone-else'")
    db.close()
    for write in (lambda: store.append_trial("r", "p", {"a": 2}, lease=lease),
                  lambda: store.clear_trials("r", "p", lease=lease),
                  lambda: store.mark_finished("r", "p", {"done": 1}, lease=lease)):
        with pytest.raises(RunLeaseHeld, match="lost its lease"):
            write()
    assert store.trials("r", "p") == [{"a": 1}] and store.finished_result("r", "p") is None
