"""The metric contract: per-example error and exact match on one reference/prediction."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable


@runtime_checkable
class Metric(Protocol):
    """A per-example error metric (CER in this project; lower is better).

    ``cer(reference, prediction)`` is >= 0 (it may exceed 1 unless clipped);
    ``exact(reference, prediction)`` says whether the two match after the metric's
    normalization. Both must be pure functions.
    """

    def cer(self, reference: str, prediction: str) -> float:
        """Error of ``prediction`` against ``reference``."""

    def exact(self, reference: str, prediction: str) -> bool:
        """Whether they match exactly after normalization."""


def mean(values: Sequence[float]) -> float:
    """Arithmetic mean; NaN for no values."""
    return sum(values) / len(values) if values else float("nan")
