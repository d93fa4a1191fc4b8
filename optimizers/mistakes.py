"""What the answer model got wrong: one error class per wrong answer, and the worst ones.

The advisor, critic, textgrad and dspy optimizers show these to the advisor (in a
meta-prompt, a loss text or GEPA's feedback).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from prompt_opt_api import Example, ExampleResult

# Latin letters that look like Cyrillic ones (plates, series, categories)
_LATIN_TO_CYRILLIC = str.maketrans("ABCEHKMOPTXY", "АВСЕНКМОРТХУ")  # compared in upper case

ERROR_CLASSES = ("empty", "extra words", "truncated", "Latin/Cyrillic look-alikes", "date or number format",
                 "wrong field", "other")


def classify_mistake(expected: str, answered: str) -> str:
    """One error class for an answer that was not exact (see ``ERROR_CLASSES``)."""
    exp = " ".join(expected.casefold().split())
    got = " ".join(answered.casefold().split()).strip(" .,:;\"'«»")
    if not got:
        return "empty"
    if exp in got and len(got) > len(exp):
        return "extra words"
    if got in exp and len(got) < len(exp):
        return "truncated"
    if got.upper().translate(_LATIN_TO_CYRILLIC) == exp.upper().translate(_LATIN_TO_CYRILLIC):
        return "Latin/Cyrillic look-alikes"
    digits = lambda s: re.sub(r"\D", "", s)  # noqa: E731
    if digits(exp) and digits(exp) == digits(got):
        return "date or number format"
    overlap = len(set(exp) & set(got)) / max(1, len(set(exp)))
    return "wrong field" if overlap < 0.5 else "other"


@dataclass(frozen=True)
class Mistake:
    """One wrong answer, for the critic's meta-prompt."""

    question: str
    expected: str
    answered: str
    cer: float
    error_class: str
    row: str


def worst_mistakes(examples: Sequence[Example], results: Sequence[ExampleResult], limit: int) -> list[Mistake]:
    """The ``limit`` highest-CER wrong answers, each with its error class."""
    wrong = [(ex, r) for ex, r in zip(examples, results) if not r.exact]
    wrong.sort(key=lambda item: -item[1].cer)
    return [Mistake(ex.question, r.answer, r.prediction, r.cer, classify_mistake(r.answer, r.prediction),
                    r.source_row) for ex, r in wrong[:limit]]
