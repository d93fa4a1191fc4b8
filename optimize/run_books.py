"""Writing prompt books beside the results CSVs (the format is ``prompt_opt_api.prompt_book``).

A run writes ``<model>_sep_<advisor>.book.json`` beside its CSV from its rows (each
finished row carries its entry, so a resumed run writes the same book). A task folder's
merged CSVs get books too: each winning row's entry is taken from its run's own book,
so the merged book holds exactly what that run scored.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from optimize.results_files import atomic_write_text
from prompt_opt_api import Example, Pair, Prompt
from prompt_opt_api.prompt_book import (
    BOOK_SUFFIX,
    BookDemo,
    BookEntry,
    BookRetrieval,
    PromptBook,
    PromptBookError,
    entry_from_json,
    entry_json,
    load_book,
    written_schema_version,
)

log = logging.getLogger(__name__)

ROW_ENTRY = "book_entry"  # a result row's key for its book entry (JSON form; not a CSV column)


def book_file_name(csv_name: str) -> str:
    """``X_sep_Y.csv`` -> ``X_sep_Y.book.json``."""
    return csv_name.removesuffix(".csv") + BOOK_SUFFIX


def winner_entry(pair: Pair, prompt: Prompt, data_dir: Path | None) -> BookEntry:
    """The book entry of a pair's winner (scores and provenance are added from its row)."""
    retrieval, trim = None, prompt.answer_shapes
    if prompt.retrieval is not None:
        rule = prompt.retrieval
        retrieval = BookRetrieval(rule.k, rule.signature, tuple(book_demo(d, data_dir) for d in rule.pool),
                                  rule.distinct_answers)
    return BookEntry(doc_class=pair.doc_class, question_type=pair.question_type, template=prompt.text,
                     demos=tuple(book_demo(d, data_dir) for d in prompt.demos), origin=prompt.origin,
                     retrieval=retrieval, demo_chars=prompt.demo_chars,
                     answer_shapes=(trim.shapes or None) if trim is not None else None,
                     answer_max_chars=trim.max_chars if trim is not None else None)


def book_demo(example: Example, csv_dir: Path | None) -> BookDemo:
    """An example used as a demo, with its image path relative to the task CSV's folder."""
    image = Path(example.image)
    if csv_dir is not None:
        image = Path(os.path.relpath(image.resolve(), Path(csv_dir).resolve()))
    return BookDemo(image.as_posix(), example.image_sha256, example.question, example.answer)


def run_book(rows: Sequence[dict[str, Any]], header: dict[str, Any], advisor: str, run_id: str) -> PromptBook:
    """A run's book from its result rows: every pair with a test CER and an entry."""
    entries = []
    for row in rows:
        data = row.get(ROW_ENTRY)
        if not data or row.get("cer") in (None, ""):
            continue  # skipped or failed pairs have nothing to deploy
        entry = entry_from_json(data, f"row {row.get('doc type question type')!r}")
        entries.append(dataclasses.replace(
            entry, val_cer=_number(row.get("val_cer")), test_cer=_number(row.get("cer")),
            test_ci=(_number(row.get("cer_ci_low")), _number(row.get("cer_ci_high"))),
            n_val=int(row.get("n_val") or 0), n_test=int(row.get("n_test") or 0), advisor=advisor,
            optimizer=str(row.get("optimizer") or ""), author=str(row.get("author") or ""), run_id=run_id))
    return PromptBook(entries=tuple(entries), **header)


def book_header(task_info: dict[str, Any] | None, model_name: str, model_identity: dict[str, Any],
                model_config: dict[str, Any] | None) -> dict[str, Any]:
    """What a book says about the task and the answer model."""
    info = task_info or {}
    return {"task_id": str(info.get("task_id", "")), "task_csv": str(info.get("csv", "")),
            "answer_model": {"name": model_name, "identity": model_identity, "config": model_config or {}},
            "split": dict(info.get("split") or {}), "metric": dict(info.get("metric") or {}),
            "loader": dict(info.get("loader") or {})}


def write_book(path: Path, book: PromptBook | None) -> Path | None:
    """Write ``book`` to ``path``; None removes an earlier book there (it no longer matches its CSV)."""
    if book is None:
        path.unlink(missing_ok=True)
        return None
    atomic_write_text(path, book.dumps())
    return path


def merged_book(best: Any, book_path_of: Any) -> PromptBook | None:
    """The book of a merged CSV: each winning row's entry taken from its run's own book.

    Args:
        best: The merged rows (``results_files.best_per_pair``).
        book_path_of: ``book_path_of(row) -> the book of the run that row came from``.

    Returns:
        The book, or None when no winning run wrote one (runs of earlier versions).
    """
    books: dict[Path, PromptBook | None] = {}
    header: PromptBook | None = None
    entries = []
    for _, row in best.iterrows():
        path = book_path_of(row)
        if path not in books:
            books[path] = _read_run_book(path)
        book = books[path]
        found = [e for e in (book.entries if book else ()) if e.key == row["doc type question type"]]
        if not found:
            log.warning("%s: no book entry for %r (a run of an earlier version?): left out of the merged book",
                        path, row["doc type question type"])
            continue
        header = header or book
        model = None if _same_model(book.answer_model, header.answer_model) else book.answer_model
        entries.append(dataclasses.replace(found[0], answer_model=model))
    if header is None:
        return None
    return dataclasses.replace(header, entries=tuple(entries), path=None,
                               schema_version=written_schema_version(tuple(entries)))


def _same_model(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def _read_run_book(path: Path) -> PromptBook | None:
    if not path.is_file():
        return None
    try:
        return load_book(path)
    except PromptBookError as err:
        log.warning("%s", err)
        return None


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if number != number else number


__all__ = ["ROW_ENTRY", "book_file_name", "book_header", "entry_json", "merged_book", "run_book",
           "winner_entry", "write_book"]
