"""One SQLite file (WAL mode) for cached answers, OCR text and the run state.

Tables:
    answers(key, answer, model, created): cache of answer-model outputs, keyed by
        sha256 of sorted JSON (see ``cache_key``); shared by every run.
    blobs(key, value): other derived data keyed the same way (e.g. OCR text per image).
    trials(run_id, pair, seq, record): every scored candidate of a run, as it happens.
    finished_pairs(run_id, pair, result): a pair whose result is final for that run.

A run killed at any moment loses at most the batch in flight: every batch commits.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def cache_key(payload: dict[str, Any]) -> str:
    """sha256 of the payload as sorted, compact JSON (never Python's ``hash()``)."""
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class AnswerStore:
    """Persistent cache and run state. Safe to open from several processes (WAL).

    Args:
        path: SQLite file; parent folders are created.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, timeout=60, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(
            """
            CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, answer TEXT NOT NULL,
                model TEXT NOT NULL, created REAL NOT NULL);
            CREATE TABLE IF NOT EXISTS blobs (key TEXT PRIMARY KEY, value TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS trials (run_id TEXT NOT NULL, pair TEXT NOT NULL,
                seq INTEGER NOT NULL, record TEXT NOT NULL, PRIMARY KEY (run_id, pair, seq));
            CREATE TABLE IF NOT EXISTS finished_pairs (run_id TEXT NOT NULL, pair TEXT NOT NULL,
                result TEXT NOT NULL, PRIMARY KEY (run_id, pair));
            """
        )
        self._db.commit()

    # -- answers ---------------------------------------------------------------
    def get_answers(self, keys: Iterable[str]) -> dict[str, str]:
        keys = list(dict.fromkeys(keys))
        found: dict[str, str] = {}
        with self._lock:
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                marks = ",".join("?" * len(chunk))
                rows = self._db.execute(f"SELECT key, answer FROM answers WHERE key IN ({marks})", chunk)
                found.update(rows.fetchall())
        return found

    def put_answers(self, items: dict[str, str], model: str) -> None:
        now = time.time()
        with self._lock, self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO answers (key, answer, model, created) VALUES (?, ?, ?, ?)",
                [(k, v, model, now) for k, v in items.items()],
            )

    def count_answers(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM answers").fetchone()[0]

    # -- blobs -----------------------------------------------------------------
    def get_blob(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM blobs WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def put_blob(self, key: str, value: str) -> None:
        with self._lock, self._db:
            self._db.execute("INSERT OR REPLACE INTO blobs (key, value) VALUES (?, ?)", (key, value))

    # -- run state -------------------------------------------------------------
    def append_trial(self, run_id: str, pair: str, record: dict[str, Any]) -> None:
        with self._lock, self._db:
            seq = self._db.execute(
                "SELECT COALESCE(MAX(seq), -1) + 1 FROM trials WHERE run_id = ? AND pair = ?", (run_id, pair)
            ).fetchone()[0]
            self._db.execute(
                "INSERT INTO trials (run_id, pair, seq, record) VALUES (?, ?, ?, ?)",
                (run_id, pair, seq, json.dumps(record, ensure_ascii=False, sort_keys=True)),
            )

    def trials(self, run_id: str, pair: str) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT record FROM trials WHERE run_id = ? AND pair = ? ORDER BY seq", (run_id, pair)
            ).fetchall()
        return [json.loads(r[0]) for r in rows]

    def clear_trials(self, run_id: str, pair: str) -> None:
        """Forget a pair's trials from an attempt that did not finish (it is redone)."""
        with self._lock, self._db:
            self._db.execute("DELETE FROM trials WHERE run_id = ? AND pair = ?", (run_id, pair))

    def finished_result(self, run_id: str, pair: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute(
                "SELECT result FROM finished_pairs WHERE run_id = ? AND pair = ?", (run_id, pair)
            ).fetchone()
        return json.loads(row[0]) if row else None

    def mark_finished(self, run_id: str, pair: str, result: dict[str, Any]) -> None:
        with self._lock, self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO finished_pairs (run_id, pair, result) VALUES (?, ?, ?)",
                (run_id, pair, json.dumps(result, ensure_ascii=False, sort_keys=True)),
            )

    def close(self) -> None:
        with self._lock:
            self._db.close()
