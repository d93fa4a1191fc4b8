"""The value a job returns to Hydra, which a sweeper (Optuna, ...) minimizes.

It is the mean **val** CER of the pairs' winners: the number the winners were chosen by.
Test CER stays in the results and is never what a sweep selects on: a sweep that kept the
job with the lowest test CER would choose on the test split and report an optimistic number.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from optimize.result_row import CER_COLUMN, Cells

FAILED = "failed"  # a results row whose status starts so: the pair has no winner


def sweep_value(rows: Sequence[Cells]) -> float:
    """The mean val CER of the winners over the run's pairs; ``inf`` when it cannot be trusted.

    A failed pair makes the value ``inf`` (the worst a minimizing sweeper can see): leaving
    it out would let a job look better by failing on the pairs it does badly on. A pair
    with a test CER but no val CER counts as ``inf`` too. Pairs skipped because the data
    has too few images are left out (the data decides that, not the job). No scored pair: ``inf``.

    Args:
        rows: The run's results rows (``status``, ``cer``, ``val_cer``).
    """
    values = []
    for row in rows:
        if str(row.get("status") or "").startswith(FAILED):
            return math.inf
        if row.get(CER_COLUMN) in (None, ""):
            continue  # skipped: too few images
        values.append(_number(row.get("val_cer")))
    if not values or any(math.isnan(v) for v in values):
        return math.inf
    return sum(values) / len(values)


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan
