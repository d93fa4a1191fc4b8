"""One SQLite file (WAL mode) for cached answers, derived data and the run state.

Tables:
    answers(key, answer, model, created): cache of answer-model outputs, keyed by
        sha256 of sorted JSON (see ``prompt_opt_api.cache_key``); shared by every run.
    blobs(key, value): other derived data keyed the same way (e.g. OCR text per image).
    trials(run_id, pair, seq, record): every scored candidate of a run, as it happens.
    finished_pairs(run_id, pair, result): a pair whose result is final for that run.
    failed_spending(run_id, pair, spending): what the failed attempts of a pair spent, so a
        retry counts it and charges it against the pair's budget.
    run_leases(run_id, ...): which live process is running a run id right now.
    timings(kind, name, n, seconds, ...): measured speeds (answer-model batches, advisor
        calls), so ``plan=true`` can estimate a run's wall time.

Several processes may share one store (Hydra multirun with a parallel launcher):
every read-modify-write runs in a ``BEGIN IMMEDIATE`` transaction with a busy timeout
and retries on ``SQLITE_BUSY``, and a run id is held by one process at a time through a
lease that a killed process does not keep (its pid is checked, and an unrenewed lease
expires). A run killed at any moment loses at most the batch in flight.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from prompt_opt_api import cache_key

__all__ = ["AnswerStore", "RunLease", "RunLeaseHeld", "cache_key"]

log = logging.getLogger(__name__)
T = TypeVar("T")

_BUSY_RETRIES = 20


class RunLeaseHeld(RuntimeError):
    """Another live process is running the same run id on this store."""


def _process_start(pid: int) -> str | None:
    """Kernel start time of ``pid`` (tells a live process from a reused pid); None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22, counted after the command name


def _machine_identity() -> tuple[str, bool]:
    """(who this machine and pid namespace are, whether pids here can be checked).

    Host name plus boot id plus pid-namespace inode: two containers sharing a host name
    but not their pids are different "hosts" here. Without /proc (not Linux), pids
    cannot be checked and a lease is judged by its heartbeat alone.
    """
    host = socket.gethostname()
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()[:8]
        pidns = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return host, False
    return f"{host}/{boot}/{pidns}", _process_start(os.getpid()) is not None


class AnswerStore:
    """Persistent cache and run state, safe to share between processes.

    Args:
        path: SQLite file; parent folders are created.
        busy_timeout_s: How long a writer waits for another process's transaction.
    """

    def __init__(self, path: str | Path, busy_timeout_s: float = 60.0) -> None:
        self.path = Path(path).expanduser()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self.read_only = False
        # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE below)
        self._db = sqlite3.connect(self.path, timeout=busy_timeout_s, check_same_thread=False,
                                   isolation_level=None)
        self._db.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
        self._retry(lambda: self._db.execute("PRAGMA journal_mode=WAL"))
        self._db.execute("PRAGMA synchronous=NORMAL")

        def create(db: sqlite3.Connection) -> None:
            for statement in (
                """CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, answer TEXT NOT NULL,
                    model TEXT NOT NULL, created REAL NOT NULL)""",
                "CREATE TABLE IF NOT EXISTS blobs (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
                """CREATE TABLE IF NOT EXISTS trials (run_id TEXT NOT NULL, pair TEXT NOT NULL,
                    seq INTEGER NOT NULL, record TEXT NOT NULL, PRIMARY KEY (run_id, pair, seq))""",
                """CREATE TABLE IF NOT EXISTS finished_pairs (run_id TEXT NOT NULL, pair TEXT NOT NULL,
                    result TEXT NOT NULL, PRIMARY KEY (run_id, pair))""",
                """CREATE TABLE IF NOT EXISTS failed_spending (run_id TEXT NOT NULL, pair TEXT NOT NULL,
                    spending TEXT NOT NULL, PRIMARY KEY (run_id, pair))""",
                """CREATE TABLE IF NOT EXISTS run_leases (run_id TEXT PRIMARY KEY, holder TEXT NOT NULL,
                    host TEXT NOT NULL, pid INTEGER NOT NULL, pid_start TEXT, acquired REAL NOT NULL,
                    heartbeat REAL NOT NULL)""",
                """CREATE TABLE IF NOT EXISTS timings (kind TEXT NOT NULL, name TEXT NOT NULL, n INTEGER NOT NULL,
                    seconds REAL NOT NULL, prompt_tokens INTEGER NOT NULL DEFAULT 0,
                    completion_tokens INTEGER NOT NULL DEFAULT 0, created REAL NOT NULL)""",
                "CREATE INDEX IF NOT EXISTS timings_by_name ON timings (kind, name, created)",
            ):
                db.execute(statement)

        self._write(create)

    @classmethod
    def open_read_only(cls, path: str | Path) -> AnswerStore | None:
        """The store at ``path`` for lookups only (``plan=true``): nothing is created or
        written, not even the file; None when there is no store there yet."""
        path = Path(path).expanduser()
        if not path.is_file():
            return None
        store = cls.__new__(cls)
        store.path, store._lock, store.read_only = path, threading.RLock(), True
        store._db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False,
                                    isolation_level=None, timeout=10.0)
        return store

    # -- transactions ----------------------------------------------------------
    @staticmethod
    def _retry(fn: Callable[[], T]) -> T:
        for attempt in range(_BUSY_RETRIES):
            try:
                return fn()
            except sqlite3.OperationalError as err:
                if "locked" not in str(err) and "busy" not in str(err):
                    raise
                time.sleep(min(0.05 * 2**attempt, 2.0))
        return fn()

    def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` in a ``BEGIN IMMEDIATE`` transaction (retried while the file is busy)."""

        def attempt() -> T:
            with self._lock:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    result = fn(self._db)
                    self._db.execute("COMMIT")
                except BaseException:
                    if self._db.in_transaction:
                        self._db.execute("ROLLBACK")
                    raise
                return result

        return self._retry(attempt)

    def _read(self, sql: str, args: Iterable[Any] = ()) -> list[tuple]:
        def attempt() -> list[tuple]:
            with self._lock:
                return self._db.execute(sql, tuple(args)).fetchall()

        return self._retry(attempt)

    # -- answers ---------------------------------------------------------------
    def get_answers(self, keys: Iterable[str]) -> dict[str, str]:
        keys = list(dict.fromkeys(keys))
        found: dict[str, str] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            found.update(self._read(f"SELECT key, answer FROM answers WHERE key IN ({marks})", chunk))
        return found

    def put_answers(self, items: dict[str, str], model: str) -> None:
        now = time.time()
        rows = [(k, v, model, now) for k, v in items.items()]
        self._write(lambda db: db.executemany(
            "INSERT OR REPLACE INTO answers (key, answer, model, created) VALUES (?, ?, ?, ?)", rows))

    def count_answers(self) -> int:
        return self._read("SELECT COUNT(*) FROM answers")[0][0]

    # -- measured speeds (what ``plan=true`` estimates wall time from) -----------
    def record_timing(self, kind: str, name: str, n: int, seconds: float, prompt_tokens: int = 0,
                      completion_tokens: int = 0) -> None:
        """Record that ``n`` items of ``kind`` (``answer``: queries of one batch, ``advisor``:
        one call) of model ``name`` took ``seconds``."""
        row = (kind, name, int(n), float(seconds), int(prompt_tokens), int(completion_tokens), time.time())
        self._write(lambda db: db.execute(
            "INSERT INTO timings (kind, name, n, seconds, prompt_tokens, completion_tokens, created) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)", row))

    def measured_speed(self, kind: str, name: str, last: int = 200) -> dict[str, float] | None:
        """Medians over the latest ``last`` records of ``name``: seconds per item and tokens
        per item; None when nothing was measured yet.

        Medians, not means: a batch that also loaded the weights is one outlier among many.
        """
        import statistics

        try:
            rows = self._read("SELECT n, seconds, prompt_tokens, completion_tokens FROM timings "
                              "WHERE kind = ? AND name = ? AND n > 0 ORDER BY created DESC LIMIT ?",
                              (kind, name, last))
        except sqlite3.OperationalError:  # a store made before timings were recorded
            return None
        if not rows:
            return None
        return {"seconds": statistics.median(s / n for n, s, _, _ in rows),
                "prompt_tokens": statistics.median(p / n for n, _, p, _ in rows),
                "completion_tokens": statistics.median(c / n for n, _, _, c in rows),
                "samples": len(rows)}

    # -- blobs (the DerivedDataCache protocol) ---------------------------------
    def get_blob(self, key: str) -> str | None:
        rows = self._read("SELECT value FROM blobs WHERE key = ?", (key,))
        return rows[0][0] if rows else None

    def put_blob(self, key: str, value: str) -> None:
        self._write(lambda db: db.execute("INSERT OR REPLACE INTO blobs (key, value) VALUES (?, ?)", (key, value)))

    # -- run state (writes check the caller's lease when given one) ------------
    @staticmethod
    def _check_lease(db: sqlite3.Connection, run_id: str, lease: RunLease | None) -> None:
        if lease is None:
            return
        row = db.execute("SELECT holder, host, pid FROM run_leases WHERE run_id = ?", (run_id,)).fetchone()
        if row is None or row[0] != lease.holder:
            who = f"pid {row[2]} on {row[1]}" if row else "nobody"
            raise RunLeaseHeld(f"run {run_id}: this process lost its lease (now held by {who}); stopping so "
                               "two processes never write the same run")

    def append_trial(self, run_id: str, pair: str, record: dict[str, Any], lease: RunLease | None = None) -> None:
        text = json.dumps(record, ensure_ascii=False, sort_keys=True)

        def append(db: sqlite3.Connection) -> None:
            self._check_lease(db, run_id, lease)
            seq = db.execute("SELECT COALESCE(MAX(seq), -1) + 1 FROM trials WHERE run_id = ? AND pair = ?",
                             (run_id, pair)).fetchone()[0]
            db.execute("INSERT INTO trials (run_id, pair, seq, record) VALUES (?, ?, ?, ?)", (run_id, pair, seq, text))

        self._write(append)

    def trials(self, run_id: str, pair: str) -> list[dict[str, Any]]:
        rows = self._read("SELECT record FROM trials WHERE run_id = ? AND pair = ? ORDER BY seq", (run_id, pair))
        return [json.loads(r[0]) for r in rows]

    def clear_trials(self, run_id: str, pair: str, lease: RunLease | None = None) -> None:
        """Forget a pair's trials from an attempt that did not finish (it is redone)."""

        def clear(db: sqlite3.Connection) -> None:
            self._check_lease(db, run_id, lease)
            db.execute("DELETE FROM trials WHERE run_id = ? AND pair = ?", (run_id, pair))

        self._write(clear)

    def finished_result(self, run_id: str, pair: str) -> dict[str, Any] | None:
        rows = self._read("SELECT result FROM finished_pairs WHERE run_id = ? AND pair = ?", (run_id, pair))
        return json.loads(rows[0][0]) if rows else None

    def mark_finished(self, run_id: str, pair: str, result: dict[str, Any], lease: RunLease | None = None) -> None:
        self._put_run_state("finished_pairs", "result", run_id, pair, result, lease)

    def failed_spending(self, run_id: str, pair: str) -> dict[str, Any] | None:
        """What the failed attempts of ``pair`` spent (``optimize.pair_attempt``); None: none failed."""
        rows = self._read("SELECT spending FROM failed_spending WHERE run_id = ? AND pair = ?", (run_id, pair))
        return json.loads(rows[0][0]) if rows else None

    def keep_failed_spending(self, run_id: str, pair: str, spending: dict[str, Any],
                             lease: RunLease | None = None) -> None:
        """Record what the failed attempts of ``pair`` spent so far (all of them: it replaces the last)."""
        self._put_run_state("failed_spending", "spending", run_id, pair, spending, lease)

    def _put_run_state(self, table: str, column: str, run_id: str, pair: str, value: dict[str, Any],
                       lease: RunLease | None) -> None:
        text = json.dumps(value, ensure_ascii=False, sort_keys=True)

        def put(db: sqlite3.Connection) -> None:
            self._check_lease(db, run_id, lease)
            db.execute(f"INSERT OR REPLACE INTO {table} (run_id, pair, {column}) VALUES (?, ?, ?)",
                       (run_id, pair, text))

        self._write(put)

    # -- leases ----------------------------------------------------------------
    def acquire_run(self, run_id: str, ttl_s: float = 300.0, wait_s: float = 0.0) -> RunLease:
        """Hold ``run_id`` for this process, or raise naming the live process that holds it.

        A lease is free when nobody holds it, when its holder's process is gone (same
        machine and pid namespace: pid and start time checked), or when it was not
        renewed for ``ttl_s`` (a holder on another machine that died). The returned
        lease renews itself from a daemon thread (every ``ttl_s / 10``) until
        ``release()``; ``ttl_s`` is well above the store's busy timeout, so a renewal
        that waits behind another process's write does not lose a live lease.

        Args:
            run_id: The run to hold.
            ttl_s: Seconds after the last renewal when a lease counts as abandoned.
            wait_s: How long to wait for a live holder to finish (0: refuse at once).

        Raises:
            RunLeaseHeld: if another live process holds it (after ``wait_s``).
        """
        host, pids_checkable = _machine_identity()
        pid = os.getpid()
        holder = f"{host}:{pid}:{uuid.uuid4().hex[:12]}"
        deadline = time.monotonic() + wait_s

        def take(db: sqlite3.Connection) -> tuple | None:
            now = time.time()
            row = db.execute("SELECT holder, host, pid, pid_start, acquired, heartbeat FROM run_leases "
                             "WHERE run_id = ?", (run_id,)).fetchone()
            if row is not None and self._alive(row, host, pids_checkable, now, ttl_s):
                return row
            db.execute("INSERT OR REPLACE INTO run_leases (run_id, holder, host, pid, pid_start, acquired, heartbeat) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?)", (run_id, holder, host, pid, _process_start(pid), now, now))
            return None

        while True:
            other = self._write(take)
            if other is None:
                return RunLease(self, run_id, holder, ttl_s)
            if time.monotonic() >= deadline:
                since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(other[4]))
                raise RunLeaseHeld(
                    f"run {run_id} is already being run by pid {other[2]} on {other[1]} (since {since}) on store "
                    f"{self.path}; wait for it to finish, stop it, or pass lease_wait_s=SECONDS to wait"
                )
            time.sleep(min(1.0, max(0.05, deadline - time.monotonic())))

    @staticmethod
    def _alive(row: tuple, host: str, pids_checkable: bool, now: float, ttl_s: float) -> bool:
        _, lease_host, pid, pid_start, _, heartbeat = row
        if now - heartbeat > ttl_s:
            return False
        if lease_host == host and pids_checkable:
            return _process_start(pid) == pid_start
        return True

    def _renew(self, run_id: str, holder: str) -> bool:
        def renew(db: sqlite3.Connection) -> bool:
            cur = db.execute("UPDATE run_leases SET heartbeat = ? WHERE run_id = ? AND holder = ?",
                             (time.time(), run_id, holder))
            return cur.rowcount == 1

        return self._write(renew)

    def _release(self, run_id: str, holder: str) -> None:
        self._write(lambda db: db.execute("DELETE FROM run_leases WHERE run_id = ? AND holder = ?", (run_id, holder)))

    def close(self) -> None:
        with self._lock:
            self._db.close()


class RunLease:
    """This process's hold on a run id; renewed in the background until released.

    Use as a context manager, or call ``release()``.
    """

    def __init__(self, store: AnswerStore, run_id: str, holder: str, ttl_s: float) -> None:
        self.store, self.run_id, self.holder = store, run_id, holder
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._heartbeat, args=(max(ttl_s / 10, 0.05),),
                                        name=f"lease-{run_id}", daemon=True)
        self._thread.start()

    def _heartbeat(self, every_s: float) -> None:
        while not self._stop.wait(every_s):
            try:
                if not self.store._renew(self.run_id, self.holder):
                    log.error("run %s: lease lost to another process", self.run_id)
                    return
            except sqlite3.Error as err:  # the next renewal may succeed; a long outage lets it expire
                log.warning("run %s: lease renewal failed: %s", self.run_id, err)

    def release(self) -> None:
        """Stop renewing and free the run id; idempotent."""
        if not self._stop.is_set():
            self._stop.set()
            self._thread.join(timeout=5)
            self.store._release(self.run_id, self.holder)

    def __enter__(self) -> RunLease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
