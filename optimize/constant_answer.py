"""The constant answer of a run's pairs: what a reader that never looks at the page scores,
beside each winner's CER in ``run.json``, the report and the run's closing lines.

A pair's constant answer is one of its train answers, the one with the lowest mean val CER
(chosen on val as a winner is; on a tie, or with no val split, the most frequent, then the
first in train order), given to every test page: its test CER is the score of a reader that
answers without reading. A winner that does not beat it is not reading the page; one that
beats it only a little may be writing the field's usual value (a date of the same month, the
store that issued most receipts). Where the same value recurs (many receipts of one store),
the constant is strong; where every page has its own value (passport numbers), it is weak.

It costs no model call: CER of train answers against val and test answers, the run's metric.
At most ``MAX_CANDIDATES`` distinct train answers are tried (the most frequent), so a large
train split stays cheap. A pair without train answers, or with no winner scored on test,
gets none.
"""

from __future__ import annotations

import logging
import math
import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from prompt_opt_api import Example, Metric, Pair

log = logging.getLogger(__name__)

MAX_CANDIDATES = 64


@dataclass(frozen=True)
class ConstantPoint:
    """One test example's CER against the constant answer, named by its CSV row."""

    row: str
    cer: float


@dataclass(frozen=True)
class ConstantAnswer:
    """A pair's constant answer in ``run.json``'s digest (``constant_answer``).

    Attributes:
        answer: The train answer given to every page.
        val_cer: Its mean val CER (None: the pair has no val split).
        test_cer: Its mean test CER.
        test: Each test example's CER.
        tried: How many distinct train answers were scored on val.
    """

    answer: str
    val_cer: float | None
    test_cer: float
    test: list[ConstantPoint]
    tried: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> ConstantAnswer | None:
        """The constant a digest holds; None for a digest without one."""
        if not data:
            return None
        val = data.get("val_cer")
        return cls(answer=str(data["answer"]), val_cer=None if val is None else float(val),
                   test_cer=float(data["test_cer"]), test=[ConstantPoint(**p) for p in data.get("test") or []],
                   tried=int(data.get("tried", 0)))


def constant_answer(pair: Pair, metric: Metric) -> ConstantAnswer | None:
    """``pair``'s constant answer (module docstring); None when it has no train answer or no test page."""
    counts = Counter(e.answer for e in pair.train)
    if not counts or not pair.test:
        return None
    candidates = [answer for answer, _ in counts.most_common(MAX_CANDIDATES)]  # by count, then train order
    val_cer = None
    if pair.val:
        scored = [(_mean_cer(answer, pair.val, metric), i) for i, answer in enumerate(candidates)]
        val_cer, best = min(scored)
        answer = candidates[best]
    else:
        answer = candidates[0]
    test = [ConstantPoint(e.source_row, float(metric.cer(e.answer, answer))) for e in pair.test]
    return ConstantAnswer(answer, val_cer, statistics.mean(p.cer for p in test), test, len(candidates))


def _mean_cer(answer: str, examples: Sequence[Example], metric: Metric) -> float:
    return statistics.mean(float(metric.cer(e.answer, answer)) for e in examples)


def run_constants(pairs: Sequence[Pair], rows: Mapping[str, Any], metric: Metric) -> dict[str, ConstantAnswer]:
    """Each pair's constant answer, for the pairs whose winner was scored on test (``rows``: the
    result rows by pair key). A pair whose constant cannot be computed is logged and left out."""
    out = {}
    for pair in pairs:
        row = rows.get(pair.key)
        if row is None or not _is_number(row.get("cer")):
            continue  # no winner on test: nothing to set the constant beside
        try:
            constant = constant_answer(pair, metric)
        except Exception:  # noqa: BLE001 - the results stand; a reference bug must not lose run.json
            log.exception("pair %r: the constant answer was not computed", pair.key)
            continue
        if constant is not None:
            out[pair.key] = constant
    return out


def _is_number(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False
