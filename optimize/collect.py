"""The results folder where runs meet: every run kept under its task and run id, merged per task.

Layout (one folder per task identity, so a run on another task never enters a merge)::

    <results_dir>/<task_id>/task.json                        what the task is (CSV, split, metric)
    <results_dir>/<task_id>/runs/<run_id>/run.json           the run: advisor, optimizer, cost, curves, errors
    <results_dir>/<task_id>/runs/<run_id>/<model>_sep_<advisor>.csv   the run's own results
    <results_dir>/<task_id>/runs/<run_id>/<model>_sep_<advisor>.book.json   its prompt book
    <results_dir>/<task_id>/runs/<run_id>/report.html        the run's report
    <results_dir>/<task_id>/<model>_sep_<advisor>.csv        best per pair across that advisor's runs
    <results_dir>/<task_id>/<model>_sep_OptimalPrompts.csv   best per pair across advisors
    <results_dir>/<task_id>/<model>_sep_*.book.json          beside each merged CSV: its winners, whole
    <results_dir>/<task_id>/report.html                      the collection's report

Winners are chosen by val CER (``results_files.best_per_pair``), never by test CER. A run
publishes itself and rebuilds its task's merged files under a file lock, so parallel
sweep jobs finishing together do not lose each other's rows.

``python -m optimize.collect RESULTS_DIR`` rebuilds the merged files and reports of every
task found there.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from optimize.run_books import book_file_name, merged_book, write_book
from optimize.results_files import (
    EXTRA_COLUMNS,
    MERGED_COLUMNS,
    OPTIMAL_SUFFIX,
    PAIR_PROMPT_CER_COLUMNS,
    atomic_write_text,
    best_per_pair,
    read_results_frame,
    results_file_name,
    write_frame,
    write_json,
)
from optimize.run_record import RUN_JSON, RunRecord

log = logging.getLogger(__name__)

RUNS = "runs"
TASK_JSON = "task.json"
REPORT = "report.html"
_LOCK = ".lock"


@contextlib.contextmanager
def task_lock(task_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``task_dir`` (flock: released by the kernel if the holder dies)."""
    import fcntl

    task_dir.mkdir(parents=True, exist_ok=True)
    with (task_dir / _LOCK).open("a") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def publish_run(results_dir: Path, record: RunRecord, csv_path: Path, task_info: dict[str, Any] | None = None,
                report: bool = False, run_report: Path | None = None) -> dict[str, Any]:
    """Store one run under its task and run id, then rebuild that task's merged files.

    Args:
        results_dir: The results folder where runs meet.
        record: The run's record (its ``run.json``).
        csv_path: The run's ``<model>_sep_<advisor>.csv``.
        task_info: What the task is, written once as ``task.json``.
        report: Also rebuild the task's HTML report.
        run_report: The run's own HTML report, copied beside its results.

    Returns:
        ``rebuild_task``'s answer.
    """
    task_dir = results_dir / record.task_id
    run_dir = task_dir / RUNS / record.run_id
    stale = sorted(p.name for p in results_dir.glob("*_sep_*.csv"))
    if stale:  # the flat layout of earlier versions: nothing updates these any more
        log.warning("%s holds results files of the old flat layout (%s): they are no longer updated; "
                    "each task's best prompts are in %s/<task_id>/", results_dir, ", ".join(stale[:3]), results_dir)
    with task_lock(task_dir):
        atomic_write_text(run_dir / csv_path.name, csv_path.read_text(encoding="utf-8"))
        book = csv_path.parent / book_file_name(csv_path.name)
        if book.is_file():
            atomic_write_text(run_dir / book.name, book.read_text(encoding="utf-8"))
        record.write(run_dir / RUN_JSON)
        if run_report is not None:
            atomic_write_text(run_dir / REPORT, run_report.read_text(encoding="utf-8"))
        if task_info is not None and not (task_dir / TASK_JSON).is_file():
            write_json(task_dir / TASK_JSON, task_info)
        return _rebuild_locked(task_dir, report)


def rebuild_task(task_dir: Path, report: bool = True) -> dict[str, Any]:
    """Rebuild a task's merged CSVs (and report) from its runs, under the task's lock.

    Returns:
        ``{"files": [written paths], "optimal": {model: best-per-pair DataFrame}, "runs": n, "report": path}``.
    """
    with task_lock(task_dir):
        return _rebuild_locked(task_dir, report)


def load_runs(task_dir: Path) -> tuple[list[RunRecord], Any]:
    """Every run of a task: the run records and one table of all their result rows.

    The table has the CSV's columns (as text) plus ``model``, ``advisor``, ``run_id`` and
    ``optimizer`` from the run record (the file's own say for a row wins where it has one).
    """
    import pandas as pd

    records, frames = [], []
    for run_json in sorted((task_dir / RUNS).glob(f"*/{RUN_JSON}")):
        try:
            record = RunRecord.read(run_json)
            csv_path = run_json.parent / results_file_name(record.model, record.advisor)
            if not csv_path.is_file():
                log.warning("skipping %s: %s is missing", run_json.parent, csv_path.name)
                continue
            frame = run_frame(record, csv_path)
        except Exception as err:  # noqa: BLE001 - one damaged run folder must not block its task's merge
            log.warning("skipping %s: %s: %s", run_json.parent, type(err).__name__, err)
            continue
        records.append(record)
        frames.append(frame)
    records.sort(key=lambda r: (r.finished_at, r.run_id))
    table = pd.concat(frames, ignore_index=True) if frames else run_frame(None, None)
    return records, table


def run_frame(record: RunRecord | None, csv_path: Path | None) -> Any:
    """One run's result rows as text, labelled with the run's model, advisor and run id."""
    import pandas as pd

    if record is None or csv_path is None:
        columns = PAIR_PROMPT_CER_COLUMNS + EXTRA_COLUMNS + MERGED_COLUMNS + ("model",)
        return pd.DataFrame(columns=list(dict.fromkeys(columns)))
    frame = read_results_frame(csv_path)
    frame["model"] = record.model
    frame["advisor"] = record.advisor
    frame["run_id"] = frame["run_id"].where(frame["run_id"] != "", record.run_id)
    frame["optimizer"] = frame["optimizer"].where(frame["optimizer"] != "", record.optimizer)
    return frame


def _rebuild_locked(task_dir: Path, report: bool) -> dict[str, Any]:
    records, table = load_runs(task_dir)
    written: list[Path] = []
    optimal: dict[str, Any] = {}
    for model in sorted(set(table["model"])):
        rows = table[table["model"] == model]
        for advisor in sorted(set(rows["advisor"])):
            if advisor == OPTIMAL_SUFFIX:
                continue  # cannot be told from the merged file; never written by a run
            path = task_dir / results_file_name(model, advisor)
            written += _write_merged(task_dir, path, best_per_pair(rows[rows["advisor"] == advisor]), model)
        optimal[model] = best_per_pair(rows)
        written += _write_merged(task_dir, task_dir / results_file_name(model, OPTIMAL_SUFFIX), optimal[model], model)
    report_path = None
    if report and records:
        from optimize.report import write_report

        task_info = _read_json(task_dir / TASK_JSON)
        try:
            report_path = write_report(task_dir / REPORT, records, table,
                                       title=f"Task {task_dir.name}: {len(records)} run(s)", task_info=task_info)
        except Exception:  # noqa: BLE001 - the merged CSVs are written; a report bug must not undo a run
            log.exception("the report of task %s was not written (the CSVs were); "
                          "`python -m optimize.collect` retries it", task_dir.name)
    return {"files": written, "optimal": optimal, "runs": len(records), "report": report_path}


def _write_merged(task_dir: Path, path: Path, best: Any, model: str) -> list[Path]:
    """A merged CSV and its prompt book (each winner's entry from its run's book)."""
    write_frame(path, best)
    book = merged_book(best, lambda row: task_dir / RUNS / row["run_id"]
                       / book_file_name(results_file_name(model, row["advisor"])))
    written = write_book(path.parent / book_file_name(path.name), book)
    return [path] if written is None else [path, written]


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def task_dirs(results_dir: Path) -> list[Path]:
    """Task folders under ``results_dir`` (those holding at least one run)."""
    return sorted({p.parent.parent.parent for p in results_dir.glob(f"*/{RUNS}/*/{RUN_JSON}")})


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m optimize.collect RESULTS_DIR``: rebuild merged files and reports."""
    parser = argparse.ArgumentParser(
        prog="python -m optimize.collect",
        description="Rebuild, for every task in a results folder, the best prompt per pair across runs "
        "(<model>_sep_<advisor>.csv per advisor, <model>_sep_OptimalPrompts.csv across advisors; chosen "
        "by val CER, reported with test CER) and the task's HTML report.",
    )
    parser.add_argument("results_dir", type=Path, help="the results folder (paths.results_dir, e.g. outputs/results)")
    parser.add_argument("--task", action="append", default=[], metavar="TASK_ID",
                        help="only this task folder (repeatable; default: every task found)")
    parser.add_argument("--no-report", action="store_true", help="rebuild the CSVs only")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)

    found = task_dirs(args.results_dir)
    if args.task:
        found = [d for d in found if d.name in set(args.task)]
    if not found:
        print(f"no runs found under {args.results_dir} (expected <task_id>/{RUNS}/<run_id>/{RUN_JSON})",
              file=sys.stderr)
        return 1
    for task_dir in found:
        result = rebuild_task(task_dir, report=not args.no_report)
        print(f"{task_dir}: {result['runs']} run(s)")
        for model, best in result["optimal"].items():
            wins = best["advisor"].value_counts()
            print(f"  {model}: {len(best)} pairs, won by " + ", ".join(f"{a} {n}" for a, n in wins.items()))
        for path in result["files"]:
            print(f"  wrote {path}")
        if result["report"] is not None:
            print(f"  report {result['report']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
