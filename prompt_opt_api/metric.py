"""The metric contract: per-example error and exact match on one reference/prediction."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

# The smallest per-example cap (``clip_at``) a CER metric takes. An empty answer scores 1.0,
# and so does a wrong one as long as the reference; a cap below 1 would score such garbage
# (or a chatty reply) better than no answer at all, down to 0.0000 for answers all wrong.
# From 1.0 up every answer that gets anything right keeps its exact CER (one wrong
# character in a typical answer is about 0.1) and only worse-than-empty answers are capped.
MIN_CLIP_AT = 1.0

# Quotes and punctuation a model tends to wrap answers in ("«Иванов».", 'Ivanov:'),
# stripped only at the ends: inner punctuation (dates, codes like 770-001) is content.
SURROUNDING = "\"'`«»„“”‘’‹›.,;:!?()[]{}<>*_ \t\n"
_WHITESPACE = re.compile(r"\s+")


def normalize_answer(text: str, casefold: bool = True) -> str:
    """An answer as the CER metric compares it: NFKC, white space collapsed, the surrounding
    quotes and punctuation (``SURROUNDING``) stripped, and case folded unless ``casefold`` is False."""
    text = _WHITESPACE.sub(" ", unicodedata.normalize("NFKC", text or "")).strip(SURROUNDING)
    return text.casefold() if casefold else text


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
