"""The run's mean CER over its pairs, with failed pairs counted: a run cannot improve its
number by failing.

A pair that failed (status ``failed: ...``), or that finished without a value in the column,
leaves the run without a mean: ``value`` is None (``run.json`` writes null, the summary says
which pairs failed) and ``objective()``, the number a Hydra sweeper minimizes, is +inf, the
worst a job can return. A pair skipped before any work (too few examples: status
``skipped: ...``) is no pair of the run and is left out. The same rule serves any column of
the results rows (``cer``: test CER; ``val_cer``: the winners' val CER).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from optimize.result_row import PAIR_COLUMN, Cells


@dataclass(frozen=True)
class RunMean:
    """The mean of one column over a run's pairs.

    Attributes:
        value: The mean over every pair of the run; None when a pair failed, a finished pair
            has no value, or no pair was scored.
        scored: Pairs with a value.
        failed: Pairs that failed (by name).
        missing: Pairs that finished without a value (by name).
    """

    value: float | None
    scored: int
    failed: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()

    def objective(self) -> float:
        """What a sweeper minimizes: the mean, or +inf when there is none (failing never helps)."""
        return math.inf if self.value is None else self.value

    def describe(self, what: str) -> str:
        """One line: ``mean test CER 0.4213 over 3 pair(s)``, or why there is none."""
        if self.value is not None:
            return f"mean {what} {self.value:.4f} over {self.scored} pair(s)"
        total = self.scored + len(self.failed) + len(self.missing)
        if not total:
            return f"no mean {what}: no pair was scored"
        reasons = []
        if self.failed:
            reasons.append(f"{len(self.failed)} of {total} pair(s) failed ({', '.join(self.failed)})")
        if self.missing:
            reasons.append(f"{len(self.missing)} of {total} pair(s) have no {what} ({', '.join(self.missing)})")
        return (f"no mean {what}: {'; '.join(reasons)}; a failed pair counts as the worst result, so the run "
                "has no mean and returns +inf to a sweeper (re-run the same command to retry it)")


def run_mean(rows: Sequence[Cells], column: str) -> RunMean:
    """The mean of ``column`` over the run's result rows, failed pairs counted (module docstring)."""
    values: list[float] = []
    failed: list[str] = []
    missing: list[str] = []
    for row in rows:
        status = str(row.get("status") or "")
        if status.startswith("skipped"):
            continue
        name = str(row.get(PAIR_COLUMN, "?"))
        if status.startswith("failed"):
            failed.append(name)
            continue
        value = _number(row.get(column))
        if value is None:
            missing.append(name)
        else:
            values.append(value)
    ok = values and not failed and not missing
    return RunMean(value=sum(values) / len(values) if ok else None, scored=len(values), failed=tuple(failed),
                   missing=tuple(missing))


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
