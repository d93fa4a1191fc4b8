"""A task's identity: its data, and the settings that make CERs comparable (split, metric).

Runs meet in a results folder only with runs of the same task, and ``optimize.apply
--split test`` re-makes a book's test split only from the same task: both compute the
identity here, from the loaded examples (the CSV's path is not part of it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from prompt_opt_api import Example, cache_key


def task_sha256(examples: Sequence[Example]) -> str:
    """Digest of every example: its row, image bytes, question, answer and pair (not the CSV's folder)."""
    return cache_key({"rows": [(e.source_row.split(", ", 1)[-1], e.image_sha256, e.question, e.answer,
                                e.doc_class, e.question_type) for e in examples]})


def task_id(data_sha256: str, split: Mapping[str, Any], metric: Mapping[str, Any]) -> str:
    """``task-<16 hex>``: another split seed or metric setting scores other examples, or scores them otherwise."""
    return "task-" + cache_key({"task_sha256": data_sha256, "split": dict(split), "metric": dict(metric)})[:16]
