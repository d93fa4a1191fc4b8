"""One run of the engine for tests: a task, the run's parts and settings, ``run_pairs``, and what the
run wrote (its summary, the results CSV's rows, ``trials.jsonl`` and ``run.json``).

Everything lives under the test's folder: the task in ``data/task.csv`` (made by
``tests.task_factory.make_task`` unless it is there already or ``data`` names another), the
answer store ``s.sqlite``, the run folder ``<out>`` and, with ``results=True``, the results
folder ``results``.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from optimize.advisor_session import AdvisorSession
from optimize.answer_store import AnswerStore
from optimize.run_loop import run_pairs
from optimize.run_record import RunRecord
from optimize.run_settings import RunParts, RunSettings
from optimize.run_summary import RunSummary
from prompt_opt_api import Optimizer, Pair, baseline_prompt
from tasks.cer_metric import CerMetric
from tasks.docqa_csv import load_task
from tasks.pair_splits import SplitConfig, split_pairs
from tests.scripted_answer_model import ScriptedAnswerModel
from tests.task_factory import make_task


@dataclass(frozen=True)
class EngineRun:
    """What ``run_engine`` ran, and the files the run wrote as they were when it returned."""

    summary: RunSummary
    pairs: list[Pair]  # every pair of the task, test split included
    model: Any  # the answer model
    store: AnswerStore
    advisor: Any  # the optimizer's advisor as the run loop had it (its ``AdvisorSession``), or None
    out_dir: Path
    csv_rows: list[dict[str, str]]  # the run's results CSV, as text
    trials: list[dict[str, Any]] | None  # trials.jsonl (None: not written)
    run_json: dict[str, Any] | None  # run.json (None: not written)

    @property
    def pair(self) -> Pair:
        return self.pairs[0]

    @property
    def row(self) -> dict[str, Any]:
        """The summary's first row (the only one in a one-pair run)."""
        return self.summary.rows[0]

    @property
    def rows_by_key(self) -> dict[str, dict[str, Any]]:
        return {r["doc type question type"]: r for r in self.summary.rows}

    @property
    def record(self) -> RunRecord:
        assert self.run_json is not None, f"no run.json in {self.out_dir}"
        return RunRecord.from_json(self.run_json)


def task_pairs(tmp_path: Path, data: Path | None = None, n_images: int = 10,
               two_pairs: bool = False) -> tuple[list[Pair], list[tuple[str, str]]]:
    """The pairs (and the pairs too small to run) of ``data``, or of ``tmp_path/data/task.csv``,
    made with ``n_images`` passports (and a number question with ``two_pairs``) if it is not there."""
    if data is None:
        data = tmp_path / "data" / "task.csv"
        if not data.exists():
            make_task(tmp_path / "data", n_images=n_images, with_second_pair=two_pairs)
    return split_pairs(load_task(data).examples, SplitConfig())


def one_pair(tmp_path: Path) -> Pair:
    """The one pair of the task ``task_pairs`` finds or makes (its passports' surname question)."""
    (pair,), _ = task_pairs(tmp_path)
    return pair


def run_engine(tmp_path: Path, optimizer: Optimizer, *, model: Any = None, advisor: Any = None, session: Any = None,
               store: AnswerStore | None = None, budget: int | None = None, out: str = "out",
               run_id: str | None = None, advisor_name: str | None = None, results: bool = False,
               report: bool = False, progress: bool = False, data: Path | None = None, n_images: int = 10,
               two_pairs: bool = False) -> EngineRun:
    """Run ``optimizer`` over the task's pairs with ``run_pairs`` and read what the run wrote.

    Args:
        tmp_path: The test's folder: the task, store, run folder and results folder go below it.
        optimizer: The optimizer under test.
        model: The answer model (default ``ScriptedAnswerModel()``).
        advisor: An advisor, given to the optimizer through an ``AdvisorSession`` on the run's store.
        session: The optimizer's advisor as is, not with ``advisor``: an ``AdvisorSession`` the test
            built (its own budget, or shared by two runs), or a bare advisor handed over unwrapped.
        store: The answer store (default ``tmp_path/s.sqlite``).
        budget: Evaluations per pair (``RunSettings.max_evaluations_per_pair``).
        out: The run folder, under ``tmp_path``.
        run_id: The run id (default ``r-<out>``: another run folder is another run).
        advisor_name: Names the results file (default the advisor's name, ``none`` without one).
        results: Keep the run in the results folder ``tmp_path/results`` too.
        report: Write the HTML reports.
        progress: Show the progress line in place (on stderr).
        data, n_images, two_pairs: The task (``task_pairs``).
    """
    assert advisor is None or session is None, "give an advisor or a session, not both"
    pairs, too_small = task_pairs(tmp_path, data, n_images, two_pairs)
    store = store or AnswerStore(tmp_path / "s.sqlite")
    model = model or ScriptedAnswerModel()
    part = AdvisorSession(advisor, store) if advisor is not None else session
    settings = RunSettings(tmp_path / out, run_id or f"r-{out}",
                           advisor_name=advisor_name or (part.name if part is not None else "none"),
                           max_evaluations_per_pair=budget, results_dir=tmp_path / "results" if results else None,
                           progress=progress, report=report)
    summary = run_pairs(pairs, too_small, RunParts(model, optimizer, part, store, CerMetric()), settings)
    return EngineRun(summary, pairs, model, store, part, settings.out_dir, _csv_rows(summary.results_csv),
                     _trials(settings.out_dir / "trials.jsonl"), _json(settings.out_dir / "run.json"))


class Plugin(Optimizer):
    """An optimizer whose ``optimize`` is ``body(pair, evaluator, advisor)``; its trials are what
    ``body`` returns (none when it returns None)."""

    name = "plugin"

    def __init__(self, body, uses_advisor=False):
        self.body, self.uses_advisor = body, uses_advisor

    def optimize(self, pair, evaluator, advisor):
        return self.body(pair, evaluator, advisor) or []


class AskingOptimizer(Optimizer):
    """Scores the data set's question on val, then asks the advisor once about the pair."""

    name = "asking"

    def optimize(self, pair, evaluator, advisor):
        evaluator.score(baseline_prompt(), pair.val)
        advisor.complete([{"role": "user", "content": pair.key}])
        return []


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def _trials(path: Path) -> list[dict[str, Any]] | None:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] if path.exists() else None


def _json(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None
