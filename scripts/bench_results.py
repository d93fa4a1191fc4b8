"""The results file of ``scripts/bench_optimizers.py``: one cell per optimizer × split seed × pair.

A cell is one ``python -m optimize`` run of one pair; it is written the moment it finishes,
atomically (a temporary file in the same folder, then ``os.replace``), so the file on disk
is always a whole JSON document and a killed benchmark loses at most the cell it was running.

What a cell holds, read from its run folder: the winner's test predictions (each example
named by its CSV row and image sha256, with its answer, prediction and CER), its val CER,
evaluations, advisor calls, prompt, author, demos, the pair's val curve, the winner's wrong
test answers by error class (``run.json``'s ``error_classes.test``: None for a run that kept
none); the train answers of the pair (to count repeated demo answers); and what it cost: answer-model and
advisor seconds (the store's ``timings`` rows written while each attempt of the cell ran, a
killed one until the next attempt of any cell began), answers computed by its last attempt, and that attempt's wall time.
"""

from __future__ import annotations

import csv
import json
import sqlite3
from dataclasses import replace, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from optimize.error_classes import SplitErrors
from optimize.results_files import atomic_write_text

FORMAT = "bench-optimizers/v2"


class ResultsFileError(ValueError):
    """The results file cannot be used (not this script's, or written with other settings)."""


@dataclass(frozen=True)
class Prediction:
    """One test example of a cell: its identity (CSV row, image sha256), answer, prediction, CER."""

    row: str
    answer: str
    prediction: str
    cer: float
    image_sha256: str = ""


@dataclass
class Cell:
    """One optimizer × split seed × pair, as its run left it."""

    optimizer: str  # the contender's label (a name of OPTIMIZERS, or "name:budget")
    seed: int
    pair: str
    budget: int
    test: list[Prediction]
    val_cer: float | None = None
    evaluations: int | None = None
    advisor_calls: int | None = None
    prompt: str = ""
    author: str = ""
    origin: str = ""
    n_demos: int | None = None
    demo_answers: list[str] = field(default_factory=list)  # fixed demos' answers (none for retrieved demos)
    train_answers: list[str] = field(default_factory=list)  # the pair's train answers (any demo comes from them)
    curve: list[list[float]] = field(default_factory=list)  # [evaluations spent, best full-val CER so far]
    test_errors: SplitErrors | None = None  # the winner's wrong test answers by class (None: not kept)
    answer_model_s: float | None = None
    advisor_s: float | None = None
    answers_computed: int | None = None
    advisor_usage: dict[str, Any] | None = None
    wall_s: float = 0.0
    attempts: int = 1
    run_dir: str = ""
    finished_at: str = ""

    @property
    def key(self) -> str:
        return cell_key(self.optimizer, self.seed, self.pair)

    @property
    def test_cers(self) -> list[float]:
        return [p.cer for p in self.test]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Cell:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["test"] = [Prediction(**p) for p in data.get("test") or []]
        values["test_errors"] = split_errors_of(data.get("test_errors"))
        return cls(**values)


def split_errors_of(data: Any) -> SplitErrors | None:
    """``SplitErrors`` from its JSON (``run.json``'s ``error_classes.test``); None for anything else."""
    if not isinstance(data, dict):
        return None
    try:
        counts = {str(k): int(v) for k, v in data["counts"].items()}
        return SplitErrors(n=int(data["n"]), wrong=int(data["wrong"]), counts=counts,
                           most_copied=int(data.get("most_copied") or 0), copied_of=int(data.get("copied_of") or 0))
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


def cell_key(optimizer: str, seed: int, pair: str) -> str:
    return f"{optimizer} | seed {seed} | {pair}"


@dataclass
class BenchResults:
    """The whole file: the settings every cell shares, the cells, the failures, the ceilings."""

    settings: dict[str, Any] = field(default_factory=dict)
    cells: dict[str, Cell] = field(default_factory=dict)
    failures: dict[str, dict[str, Any]] = field(default_factory=dict)  # cell key -> exit code, stderr tail
    started: dict[str, list[float]] = field(default_factory=dict)  # cell key -> start times of its attempts
    ceilings: dict[str, dict[str, Any]] = field(default_factory=dict)  # split seed -> Ceiling.to_json()
    # every attempt's start, of any cell, kept when its cell is done: the cells run one at a time, so an
    # attempt (a killed one too) ends where the next attempt begins
    attempt_starts: list[float] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "settings": self.settings,
                "cells": {k: asdict(c) for k, c in self.cells.items()},
                "failures": self.failures, "started": self.started, "ceilings": self.ceilings,
                "attempt_starts": self.attempt_starts}

    @classmethod
    def load(cls, path: Path) -> BenchResults:
        """The file at ``path``; an empty one when it does not exist.

        Raises:
            ResultsFileError: it is not JSON written by this script.
        """
        if not path.exists():
            return cls()
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise ResultsFileError(f"{path}: not a readable JSON file ({err})") from err
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ResultsFileError(f"{path}: not a results file of scripts/bench_optimizers.py ({FORMAT}); "
                                   "pass another --out")
        return cls(settings=data.get("settings") or {},
                   cells={k: Cell.from_json(v) for k, v in (data.get("cells") or {}).items()},
                   failures=data.get("failures") or {}, started=data.get("started") or {},
                   ceilings=data.get("ceilings") or {}, attempt_starts=data.get("attempt_starts") or [])

    def relabelled(self, suffix: str) -> BenchResults:
        """The same results with ``suffix`` appended to every contender's label (for tables only)."""
        if not suffix:
            return self
        cells = {}
        for cell in self.cells.values():
            renamed = replace(cell, optimizer=cell.optimizer + suffix)
            cells[cell_key(renamed.optimizer, renamed.seed, renamed.pair)] = renamed
        return replace(self, cells=cells, failures={})

    def save(self, path: Path) -> None:
        """Write atomically: the old file stays whole until the new one has been written in full."""
        atomic_write_text(path, json.dumps(self.to_json(), ensure_ascii=False, indent=1))

    def check_settings(self, settings: dict[str, Any], path: Path) -> None:
        """Refuse to add cells run with other settings than the file's (a table would mix them).

        Raises:
            ResultsFileError: naming the first setting that differs.
        """
        if not self.settings:
            self.settings = dict(settings)
            return
        for key, value in settings.items():
            if key in self.settings and self.settings[key] != value:
                raise ResultsFileError(f"{path} holds cells run with {key}={self.settings[key]!r}, not {value!r}: "
                                       "pass another --out (or the same settings)")


def cell_from_run(run_dir: Path, optimizer: str, seed: int, pair: str, budget: int,
                  images: dict[str, str], train_answers: list[str]) -> Cell:
    """The cell a finished run folder holds (``run.json``, ``trials.jsonl``, the results CSV).

    Args:
        images: CSV row -> image sha256, for the test predictions.
        train_answers: The pair's train answers.
    Raises:
        ValueError: the run has no test score for ``pair``.
    """
    summary = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    with (run_dir / summary["results_csv"]).open(encoding="utf-8", newline="") as fh:
        row = next((r for r in csv.DictReader(fh) if r["doc type question type"] == pair), None)
    test = _winner_test_record(run_dir / "trials.jsonl", pair, row["optimal prompt"] if row else None)
    if row is None or test is None:
        raise ValueError(f"{run_dir}: no test score for {pair!r}")
    detail = (summary.get("pairs") or {}).get(pair) or {}
    winner = detail.get("winner") or {}

    def number(name: str, kind=float):
        return kind(row[name]) if row.get(name) not in (None, "") else None

    return Cell(
        optimizer=optimizer, seed=seed, pair=pair, budget=budget,
        test=[Prediction(p["row"], p["answer"], p["prediction"], p["cer"], images.get(p["row"], ""))
              for p in test["predictions"]],
        val_cer=number("val_cer"), evaluations=number("answer_model_evaluations", int),
        advisor_calls=number("advisor_calls", int), prompt=row["optimal prompt"], author=row.get("author", ""),
        origin=row.get("origin", ""), n_demos=number("n_demos", int),
        demo_answers=[d.get("answer", "") for d in winner.get("demos") or []],
        train_answers=list(train_answers), curve=detail.get("curve") or [],
        test_errors=split_errors_of((detail.get("error_classes") or {}).get("test")),
        answers_computed=(summary.get("cost") or {}).get("model_calls_this_attempt"),
        advisor_usage=summary.get("advisor_usage"), run_dir=str(run_dir), finished_at=summary.get("finished_at", ""),
    )


def _winner_test_record(trials: Path, pair: str, prompt: str | None) -> dict[str, Any] | None:
    """The test score of the winner: the pair's test record of the winning prompt (the first one
    when a panel's members' bests follow it), else the pair's first test record."""
    records = [json.loads(line) for line in trials.read_text(encoding="utf-8").splitlines() if line.strip()]
    tests = [r for r in records if r.get("pair") == pair and r.get("split") == "test"]
    return next((r for r in tests if r.get("prompt") == prompt), tests[0] if tests else None)


def store_seconds(store: Path, since: float, until: float) -> dict[str, float]:
    """Seconds the store's ``timings`` rows record between two times, by kind (``answer``,
    ``advisor``: 0 when none); empty when the store has no such table (or no store)."""
    if not store.exists():
        return {}
    try:
        with sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=30) as db:
            rows = db.execute("SELECT kind, SUM(seconds) FROM timings WHERE created BETWEEN ? AND ? GROUP BY kind",
                              (since, until)).fetchall()
    except sqlite3.OperationalError:
        return {}
    return {"answer": 0.0, "advisor": 0.0, **{kind: round(float(seconds), 1) for kind, seconds in rows}}


def attempt_seconds(store: Path, starts: list[float], all_starts: list[float], until: float) -> dict[str, float]:
    """A cell's seconds by kind over its attempts only: each from its start (``starts``) to the next
    attempt's start of any cell (``all_starts``; the cells run one at a time) or, for the last, ``until``.
    Another cell run between a killed attempt and its resumption is not counted."""
    total: dict[str, float] = {}
    for start in starts:
        end = min([s for s in all_starts if s > start] + [until])
        for kind, seconds in store_seconds(store, start, end).items():
            total[kind] = round(total.get(kind, 0.0) + seconds, 1)
    return total

