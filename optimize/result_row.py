"""One row of a run's results: a pair's outcome as the results CSV, the store and the reports see it.

The first three columns of every results CSV carry the names the task's specification gives
them (``PAIR_COLUMN``, ``PROMPT_COLUMN``, ``CER_COLUMN``); the rest are this engine's. A row
of a pair that was skipped or failed leaves its score columns empty (None). A finished row is
stored as JSON under the run id (``to_json``), so a resumed run writes the same files.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

PAIR_COLUMN = "doc type question type"
PROMPT_COLUMN = "optimal prompt"
CER_COLUMN = "cer"

# Columns whose name is not a Python name; every other column is the field of its name.
_FIELD_OF = {PAIR_COLUMN: "pair", PROMPT_COLUMN: "prompt"}


class Cells(Protocol):
    """A row read by column name: a ``ResultRow``, or a results CSV's row as read back (a dict)."""

    def get(self, column: str, default: Any = None) -> Any: ...


@dataclass
class ResultRow:
    """One pair's outcome in a run.

    Read by column name too (``row["cer"]``, ``row.get("cer")``), as the results CSV names its
    columns: what writes rows into files (the CSV, the prompt book) reads them so.
    """

    pair: str  # PAIR_COLUMN: "<doc_class> <question_type>"
    status: str = ""  # "ok" and its notes, "failed: <type>: <message>" or "skipped: <reason>"
    optimizer: str = ""
    prompt: str | None = None  # PROMPT_COLUMN: the winner's text
    cer: float | None = None  # the winner's test CER
    cer_ci_low: float | None = None  # bootstrap 95 % interval of the test CER over the pair's test examples
    cer_ci_high: float | None = None
    val_cer: float | None = None  # the winner's full-val CER (NaN: nothing was scored on full val)
    exact_match: float | None = None
    n_train: int | None = None
    n_val: int | None = None
    n_test: int | None = None
    origin: str | None = None
    author: str | None = None
    n_demos: int | None = None
    demos: str | None = None  # each demo's image (relative to the task CSV) and answer
    answer_model_evaluations: int | None = None  # over all the pair's attempts
    advisor_calls: int | None = None
    advisor_cost_usd: float | None = None
    # not CSV columns: kept in the store and run.json, read by the prompt book and the reports
    by_author: dict[str, dict[str, Any]] = field(default_factory=dict)  # each author's best on full val
    book_entry: dict[str, Any] | None = None  # the winner exactly as scored: the prompt book's entry (JSON)
    disqualified: list[dict[str, Any]] = field(default_factory=list)  # candidates with a test-only answer

    def __getitem__(self, column: str) -> Any:
        name = _FIELD_OF.get(column, column)
        if name not in _FIELDS:
            raise KeyError(column)
        return getattr(self, name)

    def get(self, column: str, default: Any = None) -> Any:
        """The cell of ``column``; ``default`` when it is empty (None) or not a column of a row."""
        name = _FIELD_OF.get(column, column)
        value = getattr(self, name) if name in _FIELDS else None
        return default if value is None else value

    def to_json(self) -> dict[str, Any]:
        """The row as the store keeps it: every column by its CSV name."""
        return {_COLUMN_OF.get(f.name, f.name): getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ResultRow:
        """The row the store kept (``to_json``); unknown keys are ignored, missing ones take their defaults."""
        return cls(**{_FIELD_OF.get(k, k): v for k, v in data.items() if _FIELD_OF.get(k, k) in _FIELDS})


_FIELDS = frozenset(f.name for f in dataclasses.fields(ResultRow))
_COLUMN_OF = {name: column for column, name in _FIELD_OF.items()}


def ordered(rows: list[ResultRow]) -> list[ResultRow]:
    """The rows in the order the files list them: by pair."""
    return sorted(rows, key=lambda r: r.pair)
