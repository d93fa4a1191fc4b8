"""A task's identity: its data, and the settings that make CERs comparable (split, metric).

Runs meet in a results folder only with runs of the same task, and ``optimize.apply
--split test`` re-makes a book's test split only from the same task: both compute the
identity here, from the loaded examples (the CSV's path is not part of it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from optimize.shown_pair import row_label
from prompt_opt_api import Example, cache_key


def task_sha256(examples: Sequence[Example]) -> str:
    """Digest of every example: its row, image bytes, question, answer and pair (not the CSV's path:
    ``row_label`` keeps the row's ``row N (line M)`` whatever the path holds, ", " included)."""
    return cache_key({"rows": [(row_label(e.source_row, e.source_row), e.image_sha256, e.question, e.answer,
                                e.doc_class, e.question_type) for e in examples]})


def task_id(data_sha256: str, split: Mapping[str, Any], metric: Mapping[str, Any]) -> str:
    """``task-<16 hex>``: another split seed or metric setting scores other examples, or scores them otherwise."""
    return "task-" + cache_key({"task_sha256": data_sha256, "split": dict(split), "metric": dict(metric)})[:16]


def describe_task(cfg: Any, task: Any) -> dict[str, Any]:
    """What the configured ``task`` is, for ``task.json``, the prompt books and the reports: its
    identity (``task_id``, ``task_sha256``), CSV, size, loader, split and metric settings."""
    from omegaconf import OmegaConf

    split, metric = (OmegaConf.to_container(cfg[key], resolve=True) for key in ("split", "metric"))
    data_sha256 = task_sha256(task.examples)
    return {"task_id": task_id(data_sha256, split, metric), "task_sha256": data_sha256, "csv": str(task.csv_path),
            "examples": len(task.examples),
            # how the task was loaded (less its CSV): `optimize.apply` loads a CSV the same way
            "loader": {k: v for k, v in OmegaConf.to_container(cfg.task, resolve=True).items() if k != "csv"},
            "split": split, "metric": metric}
