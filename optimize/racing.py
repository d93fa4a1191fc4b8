"""Racing: score candidates on a val minibatch first, pay for full val only for contenders.

A candidate is dropped when a paired bootstrap interval of its CER minus the
incumbent's, on the same minibatch examples, lies entirely above zero (clearly worse);
every other candidate is scored on the full val split, which alone can win selection.
Per-example CER is clipped at 1 for the decision, so one chatty answer (CER 5-25)
cannot decide a race on its own.
"""

from __future__ import annotations

from collections.abc import Sequence

from optimize.stats import paired_bootstrap_interval
from prompt_opt_api import ExampleResult

CLIP_AT = 1.0  # per-example CER cap for the decision


def clearly_worse(candidate: Sequence[ExampleResult], incumbent: Sequence[ExampleResult], confidence: float = 0.95,
                  resamples: int = 1000, seed: int = 0) -> bool:
    """Whether ``candidate`` is worse than ``incumbent`` on the same examples, by a paired bootstrap.

    Args:
        candidate: Per-example results of the candidate.
        incumbent: Per-example results of the incumbent, for at least the same rows.
        confidence: Two-sided interval level; the lower bound must be above 0.
        resamples: Bootstrap resamples.
        seed: RNG seed (decisions are reproducible).
    """
    by_row = {r.source_row: min(r.cer, CLIP_AT) for r in incumbent}
    shared = [r for r in candidate if r.source_row in by_row]
    if not shared:
        return False
    low, _ = paired_bootstrap_interval([min(r.cer, CLIP_AT) for r in shared], [by_row[r.source_row] for r in shared],
                                       confidence, resamples, seed)
    return low > 0
