"""What a run produced, as ``run_pairs`` returns it, and the lines that end the run's log."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from optimize.constant_answer import ConstantAnswer
from optimize.ocr_ceiling import PairCeiling, summarize
from optimize.report_constant import summarize_constants
from optimize.run_books import book_file_name
from optimize.report_format import fmt, mean
from optimize.result_row import CER_COLUMN, ResultRow
from optimize.results_files import OPTIMAL_SUFFIX
from optimize.run_mean import run_mean
from optimize.run_record import RunRecord


@dataclass
class RunSummary:
    """What a run produced (the entry point returns ``optimize.sweep_value`` of its rows: val, never test)."""

    run_id: str
    mean_test_cer: float
    rows: list[ResultRow]
    results_csv: Path
    model_calls: int = 0
    cache_hits: int = 0
    evaluations: int = 0
    advisor_cost_usd: float = 0.0
    elapsed_s: float = 0.0
    failed_pairs: list[str] = field(default_factory=list)
    resumed_pairs: list[str] = field(default_factory=list)
    answer_model_diagnostics: dict[str, int] = field(default_factory=dict)
    advisor_usage: dict[str, Any] | None = None
    advisor_members: dict[str, dict[str, Any]] | None = None  # a panel's members, each with its own usage


def summary_lines(record: RunRecord, rows: Sequence[ResultRow], report: Path | None = None,
                  task: dict[str, Any] | None = None) -> list[str]:
    """A few lines for the end of a run: test CER, who won, cost, the OCR ceiling (or why none applies),
    the constant answer, where the results and reports are.

    Args:
        record: The run record.
        rows: The run's result rows.
        report: The run's HTML report, if written.
        task: ``optimize.collect.publish_run``'s answer (merged across runs of the task), if published.
    """
    statuses = [r.status for r in rows]
    scored = [r for r in rows if r.cer is not None]
    authors: dict[str, int] = {}
    for r in scored:
        authors[r.author or "?"] = authors.get(r.author or "?", 0) + 1
    ranked = sorted(authors.items(), key=lambda kv: (-kv[1], kv[0]))
    cost = record.cost
    test_mean = run_mean(rows, CER_COLUMN).describe("test CER")  # none when a pair failed: failing never lowers it
    lines = [
        f"run {record.run_id} ({record.optimizer}, advisor {record.advisor}): {test_mean} "
        f"({sum(s.startswith('failed') for s in statuses)} failed, {sum(s.startswith('skipped') for s in statuses)} "
        "skipped)",
        "winners by author: " + (", ".join(f"{a} {n}" for a, n in ranked) or "none"),
        f"cost: {cost.advisor_calls} advisor call(s), ${float(cost.advisor_cost_usd or 0.0):.4f}, "
        f"{cost.answer_model_evaluations} answer-model evaluations "
        f"({cost.model_calls_this_attempt} computed, {cost.cache_hits_this_attempt} from cache "
        "this attempt)",
    ]
    ceiling = summarize((r.cer, PairCeiling.from_json((record.pairs.get(r.pair) or {}).get("ceiling"))) for r in rows)
    if ceiling.line():  # the winners against a perfect reader of the page text, or why none applies
        lines.append(ceiling.line())
    constant = summarize_constants((r.pair, r.cer, ConstantAnswer.from_json(
        (record.pairs.get(r.pair) or {}).get("constant_answer"))) for r in rows)
    if constant.line():  # the winners against a reader that never looks at the page
        lines.append(constant.line())
    barred = {r.pair: len(r.disqualified) for r in rows if r.disqualified}
    if barred:
        lines.append("disqualified, a test-only answer in the prompt's text (cannot win; see run.json): "
                     + ", ".join(f"{pair} {n}" for pair, n in sorted(barred.items())))
    if task:
        for model, best in task.get("optimal", {}).items():
            wins = best["advisor"].value_counts()
            lines.append(
                f"task {record.task_id}, {model}: best of {task.get('runs')} run(s), mean test CER "
                f"{fmt(mean(best[CER_COLUMN]))} over {len(best)} pair(s); pairs won by runs with advisor "
                + (", ".join(f"{a} {n}" for a, n in wins.items()) or "none"))
    book = Path(record.out_dir) / book_file_name(record.results_csv)
    task_books = [p for p in (task or {}).get("files", []) if p.name.endswith(f"_{OPTIMAL_SUFFIX}.book.json")]
    if task_books:  # the best across the task's runs: what to deploy
        lines.append(f"prompt book (deploy this: each pair's winner with its demos): {task_books[0]}")
    elif book.is_file():
        lines.append(f"prompt book (deploy this: each pair's winner with its demos): {book}")
    if report is not None:
        lines.append(f"report: {report}")
    if task and task.get("report") is not None:
        lines.append(f"task report: {task['report']}")
    return lines
