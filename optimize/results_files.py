"""Result files: ``<model>_sep_<advisor>.csv`` per run, written atomically, and the merge across advisors."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from optimize.result_row import CER_COLUMN, PAIR_COLUMN, PROMPT_COLUMN, Cells, ResultRow

# Every results CSV starts with the pair, its best prompt and that prompt's test CER, named as the
# task's specification names them (``optimize.result_row``); the columns after them are the engine's.
PAIR_PROMPT_CER_COLUMNS = (PAIR_COLUMN, PROMPT_COLUMN, CER_COLUMN)
EXTRA_COLUMNS = (
    "cer_ci_low",  # bootstrap 95 % interval of the test CER over the pair's test examples
    "cer_ci_high",
    "val_cer",
    "exact_match",
    "n_train",
    "n_val",
    "n_test",
    "optimizer",
    "origin",
    "author",
    "n_demos",
    "demos",  # each demo's image (relative to the task CSV) and answer; the prompt book has them whole
    "answer_model_evaluations",
    "advisor_calls",
    "advisor_cost_usd",
    "status",
)
# Merged files (best per pair across runs or advisors): pair, prompt and CER, then who
# won, with what, in which run, and the test CER's interval; the rest for the curious.
MERGED_COLUMNS = PAIR_PROMPT_CER_COLUMNS + (
    "advisor",
    "optimizer",
    "run_id",
    "cer_ci_low",
    "cer_ci_high",
    "val_cer",
    "author",
    "origin",
    "n_demos",
    "demos",
    "n_val",
    "n_test",
    "exact_match",
)
OPTIMAL_SUFFIX = "OptimalPrompts"


def safe_name(name: str) -> str:
    """A file-name-safe form of a model or advisor name (``/`` and spaces -> ``-``)."""
    return re.sub(r"[^0-9A-Za-z._+-]+", "-", name).strip("-") or "unnamed"


def results_file_name(model_name: str, advisor_name: str) -> str:
    return f"{safe_name(model_name)}_sep_{safe_name(advisor_name)}.csv"


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that a crash leaves the old file or the new one, whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # mkstemp makes the file 0600; a results file is meant to be shared (a results folder
    # several users read), so it gets the mode any new file gets under the process umask.
    try:  # Linux: read the umask without changing it (setting it is not thread-safe)
        with open("/proc/self/status", encoding="ascii") as status:
            umask = next(int(line.split()[1], 8) for line in status if line.startswith("Umask:"))
    except (OSError, StopIteration, ValueError, IndexError):
        umask = os.umask(0o022)
        os.umask(umask)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def csv_text(columns: Sequence[str], rows: Sequence[Cells]) -> str:
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


def write_results_csv(path: Path, rows: Sequence[ResultRow]) -> None:
    atomic_write_text(path, csv_text(PAIR_PROMPT_CER_COLUMNS + EXTRA_COLUMNS, rows))


def write_json(path: Path, payload: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(payload, ensure_ascii=False, indent=2, sort_keys=True) + "\n")


def read_results_frame(path: Path) -> Any:
    """A results CSV as a pandas DataFrame of strings, every known column present.

    Cells stay the text that was written (``0.3000``), so a merge copies them unchanged;
    missing cells and columns read as ``""``.
    """
    import pandas as pd

    frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    for column in dict.fromkeys(PAIR_PROMPT_CER_COLUMNS + EXTRA_COLUMNS + MERGED_COLUMNS):
        if column not in frame.columns:
            frame[column] = ""
    return frame


def best_per_pair(frame: Any) -> Any:
    """The winner per pair among ``frame``'s rows, as a DataFrame in ``MERGED_COLUMNS`` order.

    Rows without a test CER (skipped or failed pairs) do not compete. The winner is
    chosen by **validation** CER as written (4 decimals), then the shorter prompt, then
    the advisor name and run id. Test CER never decides, not even a tie: picking by test
    CER across many runs would overfit the test split and report an optimistic number.
    """
    import pandas as pd

    rows = frame[frame[CER_COLUMN].astype(str).str.strip() != ""].copy()
    rows["_val"] = pd.to_numeric(rows["val_cer"], errors="coerce").round(4).fillna(math.inf)
    rows["_len"] = rows[PROMPT_COLUMN].astype(str).str.len()
    rows = rows.sort_values([PAIR_COLUMN, "_val", "_len", "advisor", "run_id"], kind="stable")
    best = rows.drop_duplicates(PAIR_COLUMN, keep="first")
    return best[list(MERGED_COLUMNS)].reset_index(drop=True)


def write_frame(path: Path, frame: Any) -> None:
    """Write a DataFrame as CSV atomically (no index column)."""
    atomic_write_text(path, frame.to_csv(index=False, lineterminator="\n"))


def merge_optimal_prompts(results_dir: Path, model_name: str, run_id: str = "",
                          own_csv: str | None = None) -> Path | None:
    """Write ``<model>_sep_OptimalPrompts.csv``: the best prompt per pair among advisor files in one folder.

    Ranked by ``best_per_pair`` (val CER; test CER never decides). A run's own folder
    passes ``own_csv``: then that file alone competes, since other files in a reused
    folder may be of another run on another task. Runs meet and merge in the results
    folder, per task (``optimize.collect``).

    Args:
        results_dir: The folder.
        model_name: The answer model whose files compete.
        run_id: Written as the run id of the rows (the files do not name one).
        own_csv: The run's own results file name (None: every advisor file in the folder competes).

    Returns:
        The written file, or None if no advisor file was found.
    """
    import pandas as pd

    prefix = f"{safe_name(model_name)}_sep_"
    frames = []
    for path in sorted(results_dir.glob(f"{prefix}*.csv")):
        advisor = path.stem[len(prefix) :]
        if advisor == OPTIMAL_SUFFIX or (own_csv is not None and path.name != own_csv):
            continue
        frames.append(read_results_frame(path).assign(advisor=advisor, run_id=run_id))
    if not frames:
        return None
    out = results_dir / f"{prefix}{OPTIMAL_SUFFIX}.csv"
    write_frame(out, best_per_pair(pd.concat(frames, ignore_index=True)))
    return out
