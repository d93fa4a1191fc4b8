"""The statistics the engine and the scripts report: one implementation of each.

Every interval is a seeded percentile bootstrap (numpy's ``default_rng``), so a rerun
writes the same figures; CER of one example can exceed 1 (a chatty answer), which is
why a clipped mean and the median are reported beside the mean.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence


def bootstrap_interval(values: Sequence[float], confidence: float = 0.95, resamples: int = 2000,
                       seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (seeded: a rerun writes the same).

    Returns:
        (low, high); (nan, nan) for no values.
    """
    import numpy as np  # lazy: the light runtime (prompt books) does not need it

    data = np.asarray(values, dtype=float)
    if data.size == 0:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, size=(resamples, data.size))].mean(axis=1)
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(means, [tail, 100.0 - tail])
    return float(low), float(high)


def paired_bootstrap_interval(values: Sequence[float], baseline: Sequence[float], confidence: float = 0.95,
                              resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """Bootstrap interval of the mean of ``values[i] - baseline[i]`` (the same items, resampled together).

    Returns:
        (low, high); (nan, nan) for no pairs.
    Raises:
        ValueError: the two sequences differ in length (they must be paired item by item).
    """
    if len(values) != len(baseline):
        raise ValueError(f"paired bootstrap needs paired values: {len(values)} against {len(baseline)}")
    return bootstrap_interval([v - b for v, b in zip(values, baseline)], confidence, resamples, seed)


def clipped_mean(values: Sequence[float], at: float = 1.0) -> float:
    """Mean of ``values`` each capped at ``at`` (one chatty answer cannot dominate); nan for none."""
    return statistics.mean(min(v, at) for v in values) if values else math.nan


def median(values: Sequence[float]) -> float:
    """Median of ``values``; nan for none."""
    return statistics.median(values) if values else math.nan
