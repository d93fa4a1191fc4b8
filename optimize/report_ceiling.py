"""The report's OCR ceiling: beside each winner's test CER, the ceiling of its pair's test pages
(a perfect reader of the page text the model reads, ``optimize.ocr_ceiling``) and the gap, and
one line over the pairs: the winners' mean test CER against the mean ceiling; or one line saying
that no text ceiling applies (a model that reads pixels). Read from ``run.json``'s digests.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from optimize.ocr_ceiling import PairCeiling, summarize
from optimize.report_format import esc, num
from optimize.result_row import CER_COLUMN, PAIR_COLUMN

CEILING_COLUMN = "ceiling"
GAP_COLUMN = "gap"

DigestOf = Callable[[str, str], Mapping[str, Any]]


def _ceilings(best: Any, digest_of: DigestOf) -> list[PairCeiling | None]:
    """Each best row's ceiling, from its run's digest of its pair (None: none recorded)."""
    return [PairCeiling.from_json(digest_of(row["run_id"], row[PAIR_COLUMN]).get("ceiling"))
            for _, row in best.iterrows()]


def ceiling_cells(best: Any, digest_of: DigestOf) -> dict[str, list[str]]:
    """The ``ceiling`` and ``gap`` (test CER minus ceiling) cells of the best rows, empty where a
    row has no ceiling; no columns at all when no row has one."""
    ceilings, out = _ceilings(best, digest_of), {CEILING_COLUMN: [], GAP_COLUMN: []}
    if not any(c is not None and c.test is not None for c in ceilings):
        return {}
    for cer, ceiling in zip(best[CER_COLUMN], ceilings):
        value = ceiling.test.mean if ceiling is not None and ceiling.test is not None else None
        gap = math.nan if value is None else num(cer) - value
        out[CEILING_COLUMN].append("" if value is None else f"{value:.3f}")
        out[GAP_COLUMN].append("" if math.isnan(gap) else f"{gap:+.3f}")
    return out


def ceiling_line(best: Any, digest_of: DigestOf) -> str:
    """One paragraph: the winners' mean test CER against the mean ceiling over the pairs that have
    one, or why no text ceiling applies; "" when no row records a ceiling."""
    summary = summarize(zip(best[CER_COLUMN], _ceilings(best, digest_of)))
    if summary.n:
        return (f"<p>Mean test CER of the winners {summary.mean_cer:.3f} against a mean OCR ceiling of "
                f"{summary.mean_ceiling:.3f} over the same {summary.n} pair(s): gap {summary.gap:+.3f}.</p>"
                "<p class='note'>The ceiling of a pair is the mean best-span CER of its test pages: the lowest CER "
                "of any span of the page's text as the answer model reads it (its OCR), what a perfect reader of "
                "that text would score. The gap is what the reader and its prompt lose; the ceiling is what the "
                "OCR loses.</p>")
    if summary.no_text:
        return f"<p class='note'>No text ceiling: {esc(summary.no_text)}.</p>"
    return ""
