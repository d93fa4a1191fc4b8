"""What a run writes: its results CSV and prompt book after every pair, then the run folder's
merged files, ``run.json`` (with each pair's OCR ceiling, ``optimize.ocr_ceiling``), its report,
its copy in the results folder and its closing log lines.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from optimize.answer_store import AnswerStore
from optimize.constant_answer import ConstantAnswer, run_constants
from optimize.ocr_ceiling import PairCeiling, run_ceilings
from optimize.pair_digest import pair_digest
from optimize.run_books import book_file_name, merged_book, run_book, write_book
from optimize.result_row import ResultRow, ordered
from optimize.results_files import merge_optimal_prompts, read_results_frame, results_file_name, write_results_csv
from optimize.run_record import RUN_JSON, RunCost, RunRecord
from optimize.run_settings import RunParts, RunSettings
from optimize.run_summary import RunSummary, summary_lines
from optimize.task_identity import task_id as task_id_from, task_sha256
from prompt_opt_api import Pair

log = logging.getLogger(__name__)


def write_results(csv_path: Path, rows: list[ResultRow], header: Callable[[], dict[str, Any]], advisor: str,
                  run_id: str) -> None:
    """The run's CSV and, beside it, its prompt book (each pair's winner, whole), once a pair has one;
    until then no book (one left there by another run in this folder is removed: it is not this run's)."""
    rows, book = ordered(rows), None
    write_results_csv(csv_path, rows)
    try:
        book = run_book(rows, header(), advisor, run_id) if any(r.book_entry for r in rows) else None
    except Exception:  # noqa: BLE001 - e.g. a resumed run whose model cannot state its identity: the CSV stands
        log.exception("the prompt book beside %s was not written", csv_path.name)
    write_book(csv_path.parent / book_file_name(csv_path.name), book)


def merge_run_folder(out_dir: Path, model_name: str, run_id: str, csv_path: Path) -> None:
    """The run folder's OptimalPrompts CSV and its book, from this run's own CSV and book only
    (another run's files in a reused folder may be of another task)."""
    merged = merge_optimal_prompts(out_dir, model_name, run_id=run_id, own_csv=csv_path.name)
    if merged is None:
        return
    book = merged_book(read_results_frame(merged),
                       lambda row: out_dir / book_file_name(results_file_name(model_name, row["advisor"])))
    write_book(out_dir / book_file_name(merged.name), book)


def publish(summary: RunSummary, context: dict[str, str], pairs: Sequence[Pair], parts: RunParts,
            settings: RunSettings) -> None:
    """Write run.json (and the run's report), keep the run in the results folder, log a short summary."""
    task_id = settings.task_id or _task_id_of_pairs(pairs)
    rows = {r.pair: r for r in summary.rows}
    ceilings = run_ceilings(pairs, rows, parts.model, parts.metric)
    constants = run_constants(pairs, rows, parts.metric)
    record = run_record(summary, context, task_id, pairs, parts.store, settings.out_dir, ceilings, constants)
    record.split_units = (settings.task_info or {}).get("split_units")
    record.write(settings.out_dir / RUN_JSON)
    run_report = _write_run_report(record, summary, settings) if settings.report else None
    task = None
    if settings.results_dir is not None:
        from optimize.collect import publish_run

        try:
            task = publish_run(settings.results_dir, record, summary.results_csv, task_info=settings.task_info,
                               report=settings.report, run_report=run_report)
        except Exception:  # noqa: BLE001 - the run's own files are written: publishing is retried by collect
            log.exception("the run was not fully published to %s (its own files in %s are complete)",
                          settings.results_dir, settings.out_dir)
    for line in summary_lines(record, summary.rows, report=run_report, task=task):
        log.info("%s", line)


def _task_id_of_pairs(pairs: Sequence[Pair]) -> str:
    """The task's identity when the caller gave none: its examples as the pairs hold them,
    with no split or metric settings known (``optimize.task_identity``, as the entry point)."""
    examples = sorted((e for p in pairs for e in (*p.train, *p.val, *p.test)), key=lambda e: e.source_row)
    return task_id_from(task_sha256(examples), {}, {})


def _write_run_report(record: RunRecord, summary: RunSummary, settings: RunSettings) -> Path | None:
    from optimize.collect import run_frame
    from optimize.report import write_report

    try:
        return write_report(settings.out_dir / "report.html", [record], run_frame(record, summary.results_csv),
                            title=f"Run {summary.run_id}: {record.optimizer}, advisor {record.advisor}",
                            task_info=settings.task_info, one_run=True)
    except Exception:  # the results are written; a report bug must not fail the run
        log.exception("the run's report was not written")
        return None


def run_record(summary: RunSummary, context: dict[str, str], task_id: str, pairs: Sequence[Pair],
               store: AnswerStore, out_dir: Path, ceilings: Mapping[str, PairCeiling] | None = None,
               constants: Mapping[str, ConstantAnswer] | None = None) -> RunRecord:
    """The run as the results folder and the reports see it (``run.json``); ``ceilings``: each
    pair's OCR ceiling (``optimize.ocr_ceiling.run_ceilings``), ``constants`` its constant answer
    (``optimize.constant_answer.run_constants``), none for a pair left out."""
    ceilings, constants = ceilings or {}, constants or {}

    def total(column: str) -> float:
        return sum(float(r.get(column) or 0) for r in summary.rows)

    rows = {r.pair: r for r in summary.rows}
    cost = RunCost(
        advisor_calls=int(total("advisor_calls")),
        advisor_cost_usd=total("advisor_cost_usd"),
        advisor_cost_usd_this_attempt=summary.advisor_cost_usd,
        answer_model_evaluations=int(total("answer_model_evaluations")),
        model_calls_this_attempt=summary.model_calls,
        cache_hits_this_attempt=summary.cache_hits,
        evaluations_this_attempt=summary.evaluations,
    )
    return RunRecord(
        **context,
        task_id=task_id,
        finished_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        elapsed_s=round(summary.elapsed_s, 3),
        out_dir=str(out_dir),
        results_csv=summary.results_csv.name,
        mean_test_cer=None if math.isnan(summary.mean_test_cer) else summary.mean_test_cer,
        failed_pairs=summary.failed_pairs,
        resumed_pairs=summary.resumed_pairs,
        cost=cost,
        advisor_usage=summary.advisor_usage,
        advisor_members=summary.advisor_members,
        answer_model_diagnostics=summary.answer_model_diagnostics,
        pairs={pair.key: pair_digest(pair, store.trials(summary.run_id, pair.key),
                                     rows.get(pair.key) or ResultRow(pair.key), ceiling=ceilings.get(pair.key),
                                     constant=constants.get(pair.key))
               for pair in pairs},
    )

