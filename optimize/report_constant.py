"""The report's constant answer: beside each winner's test CER, the test CER of its pair's
constant answer (the train answer a reader that never looks at the page would give,
``optimize.constant_answer``), and one line over the pairs: how many winners beat it and the
means. Read from ``run.json``'s digests.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from optimize.constant_answer import ConstantAnswer
from optimize.report_format import esc, num
from optimize.result_row import CER_COLUMN, PAIR_COLUMN

CONSTANT_COLUMN = "constant answer"
CSV_DIGITS = 4  # a CER's decimals in the results CSV (``optimize.results_files``)

DigestOf = Callable[[str, str], Mapping[str, Any]]


@dataclass(frozen=True)
class ConstantSummary:
    """The winners against their pairs' constant answers, over the pairs that have both.

    Attributes:
        n: Pairs with a winner's test CER and a constant answer.
        mean_cer: Their winners' mean test CER.
        mean_constant: Their constant answers' mean test CER.
        not_below: The pairs whose winner does not score below its constant answer.
    """

    n: int = 0
    mean_cer: float = float("nan")
    mean_constant: float = float("nan")
    not_below: tuple[str, ...] = ()

    def line(self) -> str:
        """One line for the run's log; "" when no pair has a constant answer."""
        if not self.n:
            return ""
        beaten = f"{self.n - len(self.not_below)} of {self.n} winners below it"
        return (f"constant answer (the best train answer on val, given to every page without reading it): mean "
                f"test CER {self.mean_constant:.4f} against the winners' {self.mean_cer:.4f}; {beaten}"
                + (f" (not: {', '.join(self.not_below)})" if self.not_below else ""))


def summarize_constants(cells: Iterable[tuple[str, Any, ConstantAnswer | None]]) -> ConstantSummary:
    """The summary over (pair, winner's test CER, the pair's constant answer) of each pair."""
    scored = [(str(pair), num(cer), constant.test_cer) for pair, cer, constant in cells
              if constant is not None and math.isfinite(num(cer))]  # a winner scored on test
    if not scored:
        return ConstantSummary()
    # compared at the digits the results CSV keeps (the report's winners come from it): a tie is not below
    not_below = tuple(pair for pair, cer, constant in scored if round(cer, CSV_DIGITS) >= round(constant, CSV_DIGITS))
    return ConstantSummary(len(scored), statistics.mean(c for _, c, _ in scored),
                           statistics.mean(k for _, _, k in scored), not_below)


def _constants(best: Any, digest_of: DigestOf) -> list[ConstantAnswer | None]:
    return [ConstantAnswer.from_json(digest_of(row["run_id"], row[PAIR_COLUMN]).get("constant_answer"))
            for _, row in best.iterrows()]


def constant_cells(best: Any, digest_of: DigestOf) -> dict[str, list[str]]:
    """The ``constant answer`` cells of the best rows (its test CER), empty where a row has none;
    no column at all when no row has one."""
    constants = _constants(best, digest_of)
    if not any(c is not None for c in constants):
        return {}
    return {CONSTANT_COLUMN: ["" if c is None else f"{c.test_cer:.3f}" for c in constants]}


def constant_line(best: Any, digest_of: DigestOf) -> str:
    """One paragraph: the winners against their constant answers; "" when no row records one."""
    summary = summarize_constants(zip(best[PAIR_COLUMN], best[CER_COLUMN], _constants(best, digest_of)))
    if not summary.n:
        return ""
    weak = (f" Not below it: {esc(', '.join(summary.not_below))}: those winners score no better than a reader "
            "that never looks at the page.") if summary.not_below else ""
    return (f"<p>Constant answer: mean test CER {summary.mean_constant:.3f} against the winners' "
            f"{summary.mean_cer:.3f}; {summary.n - len(summary.not_below)} of {summary.n} winners below it.{weak}</p>"
            "<p class='note'>A pair's constant answer is the train answer with the lowest val CER, given to every "
            "test page: what a reader that never looks at the page scores. A winner close to it may be writing "
            "the field's usual value rather than reading it.</p>")
