"""The best span of a page for one answer: the lowest CER between the answer and any
contiguous piece of the page's text, the score of a reader that always copies the
best-matching piece of the page.

Spans are exact, not sampled: every substring of the normalized page text (the metric's
normalization, passed in as ``normalize``: NFKC, whitespace collapsed, case folded for the
default CER metric) that neither starts nor ends with a character the normalization strips
from a prediction's ends (whitespace, quotes, surrounding punctuation), plus the empty
answer (CER 1). They may start and end inside a word and cross line breaks (an address spans
lines). The minimum is found by approximate substring matching (Sellers' dynamic programme,
one numpy row per answer character), which equals the brute-force minimum of the metric's
``cer`` over all those spans: a 6,000-character page and an 80-character answer take
milliseconds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from prompt_opt_api import Metric

_FAR = 1 << 30  # "no alignment": larger than any edit distance on a page

Normalizer = Callable[[str], str]


@dataclass(frozen=True)
class SpanMatch:
    """The best span of a page for one answer: its CER (the metric's) and the span itself."""

    cer: float
    span: str


def best_span(answer: str, page: str, metric: Metric, normalize: Normalizer) -> SpanMatch:
    """The lowest CER between ``answer`` and any span of ``page`` (the module docstring defines spans).

    Args:
        answer: The reference answer.
        page: The page text the model reads.
        metric: The run's metric: its ``cer`` scores the best span found.
        normalize: The metric's normalization (what it does to a reference and a prediction
            before comparing them).
    Raises:
        ValueError: the answer is empty after normalization (the metric has no CER for it).
    """
    import numpy as np

    ref, text = normalize(answer), normalize(page)
    if not ref:
        raise ValueError(f"reference {answer!r} is empty after normalization")
    codes = _codes(text)
    keeps = {c: normalize(c) != "" for c in set(text)}  # a span may start or end on c
    kept = np.array([keeps[c] for c in text], dtype=bool)
    starts = np.where(np.append(kept, False), 0, _FAR)
    ends = _last_row(ref, codes, starts)
    ends[0] = _FAR
    ends[1:][~kept] = _FAR
    end = int(np.argmin(ends))
    if ends[end] >= len(ref):
        return SpanMatch(1.0, "")  # no span beats answering nothing
    start = end - _span_length(ref, codes[:end], kept[:end])
    span = text[start:end]
    return SpanMatch(metric.cer(answer, span), span)


def _codes(text: str):
    import numpy as np

    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)


def _last_row(ref: str, text, row0):
    """The last row of the edit-distance table of ``ref`` against ``text`` (code points),
    row 0 given: entry j is the cheapest alignment of all of ``ref`` ending after ``text[:j]``.

    Each row in numpy: a match/substitution or deletion from the row above, then the
    insertions along the row as a running minimum of ``E[j'] - j'`` (plus ``j``).
    """
    import numpy as np

    idx = np.arange(text.size + 1, dtype=np.int64)
    row = np.minimum.accumulate(row0 - idx) + idx  # text characters before the span's first match: insertions
    for ch in ref:
        cost = (text != ord(ch)).astype(np.int64)
        best = np.empty_like(row)
        best[0] = row[0] + 1  # a deletion: the span still starts where row 0 let it
        best[1:] = np.minimum(row[:-1] + cost, row[1:] + 1)
        row = np.minimum.accumulate(best - idx) + idx
    return row


def _span_length(ref: str, text, kept) -> int:
    """The shortest length L of a best span of ``ref`` ending at the end of ``text``: the same
    table on both strings reversed, with the text consumed from its end (row 0 = 0, 1, 2, ...)."""
    import numpy as np

    reversed_row = _last_row(ref[::-1], text[::-1], np.arange(text.size + 1, dtype=np.int64))
    allowed = np.append(False, kept[::-1])  # L >= 1 and the span's first character is kept
    return int(np.argmin(np.where(allowed, reversed_row, _FAR)))
