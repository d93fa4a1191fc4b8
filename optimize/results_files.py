"""Result files: the seed-named CSVs, written atomically, and the across-advisor merge."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# The first three columns exactly as the seed names them; the rest are ours.
SEED_COLUMNS = ("doc type question type", "optimal prompt", "cer")
EXTRA_COLUMNS = (
    "val_cer",
    "exact_match",
    "n_train",
    "n_val",
    "n_test",
    "optimizer",
    "origin",
    "author",
    "n_demos",
    "answer_model_evaluations",
    "advisor_calls",
    "advisor_cost_usd",
    "status",
)
OPTIMAL_COLUMNS = SEED_COLUMNS + ("advisor", "author", "val_cer", "n_test", "optimizer", "source_file")
OPTIMAL_SUFFIX = "OptimalPrompts"


def safe_name(name: str) -> str:
    """A file-name-safe form of a model or advisor name (``/`` and spaces -> ``-``)."""
    return re.sub(r"[^0-9A-Za-z._+-]+", "-", name).strip("-") or "unnamed"


def results_file_name(model_name: str, advisor_name: str) -> str:
    return f"{safe_name(model_name)}_sep_{safe_name(advisor_name)}.csv"


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that a crash leaves the old file or the new one, whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def csv_text(columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(row.get(k)) for k in columns})
    return buf.getvalue()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if value != value else f"{value:.4f}"  # NaN -> empty
    return str(value)


def write_results_csv(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    atomic_write_text(path, csv_text(SEED_COLUMNS + EXTRA_COLUMNS, rows))


def write_json(path: Path, payload: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(payload, ensure_ascii=False, indent=2, sort_keys=True) + "\n")


def merge_optimal_prompts(results_dir: Path, model_name: str) -> Path | None:
    """Write ``<model>_sep_OptimalPrompts.csv``: the best prompt per pair across advisors.

    Every ``<model>_sep_<advisor>.csv`` in ``results_dir`` competes. The winner of a pair
    is chosen by **validation** CER as written (4 decimals), then the shorter prompt, then
    the advisor name, and reported with its test CER. Test CER never decides, not even a
    tie: picking by test CER across many advisors would overfit the test split and
    report an optimistic number.

    Returns:
        The written file, or None if no advisor file was found.
    """
    prefix = f"{safe_name(model_name)}_sep_"
    best: dict[str, dict[str, Any]] = {}
    found = False
    for path in sorted(results_dir.glob(f"{prefix}*.csv")):
        advisor = path.stem[len(prefix) :]
        if advisor == OPTIMAL_SUFFIX:
            continue
        found = True
        with path.open(encoding="utf-8", newline="") as fh:
            for row in csv.DictReader(fh):
                if not row.get("cer"):
                    continue  # pair skipped in that run
                rank = (round(_float(row.get("val_cer")), 4), len(row.get("optimal prompt") or ""), advisor)
                key = row["doc type question type"]
                if key not in best or rank < best[key]["_rank"]:
                    best[key] = dict(row, advisor=advisor, source_file=path.name, _rank=rank)
    if not found:
        return None
    out = results_dir / f"{prefix}{OPTIMAL_SUFFIX}.csv"
    atomic_write_text(out, csv_text(OPTIMAL_COLUMNS, [best[k] for k in sorted(best)]))
    return out


def _float(text: str | None) -> float:
    try:
        return float(text) if text else float("inf")
    except ValueError:
        return float("inf")
