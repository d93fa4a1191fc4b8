"""A test-only answer cannot win: full-val candidates whose text carries an answer only the test split has.

Whatever way a plugin built its text (a "possible values" list read from the data file, a
gazetteer, state kept from another pair), a candidate that shows the answer model an
answer no train or val example has cannot win. Texts are rendered for every val example
and compared in two forms, and a match in either counts:

* as the metric normalizes them (NFKC, white space, surrounding punctuation, case);
* raw: case folded, without NFKC, with combining marks (Unicode category Mn) and format
  characters (Cf: zero-width spaces and joiners, soft hyphens) removed, white space
  collapsed. A mark after a letter that NFKC would compose into another letter
  ("Петрова" + U+0306 becomes "...вӑ"), or a zero-width character inside a word, leaves
  the word a model reads.

An answer is checked when it is distinctive: at least ``MIN_LEAK_CHARS`` characters, or a
number of at least ``MIN_LEAK_DIGITS`` digits (matched only where no digit stands next to
it). What the example's own question says is not the prompt's doing, and demos are train
examples, so their answers are never test-only.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from optimize.run_record import TrialRecord
from optimize.shown_pair import row_label
from prompt_opt_api import FULL_VAL, Example, Metric, Pair, Prompt

# A test answer this short ("да", "12") turns up in honest prompts by chance ...
MIN_LEAK_CHARS = 4
# ... but a number of 3 digits ("520", "077") does not.
MIN_LEAK_DIGITS = 3
_SPACE = re.compile(r"\s+")
_DROPPED = ("Mn", "Cf")

Normalizer = Callable[[str], str]


@dataclass(frozen=True)
class _Answer:
    """A test-only answer in one form, and the example it is the answer of."""

    text: str
    example: Example

    def found_in(self, shown: str) -> bool:
        if len(self.text) < MIN_LEAK_CHARS:  # a short number: not part of a longer one
            return re.search(rf"(?<!\d){re.escape(self.text)}(?!\d)", shown) is not None
        return self.text in shown


def raw_form(text: str) -> str:
    """Case folded, combining marks and format characters removed, white space collapsed; no NFKC."""
    kept = "".join(c for c in (text or "").casefold() if unicodedata.category(c) not in _DROPPED)
    return _SPACE.sub(" ", kept).strip()


def metric_normalizer(metric: Metric) -> Normalizer:
    """The metric's own normalization (``normalize``), else NFKC, collapsed whitespace, case folded."""
    own = getattr(metric, "normalize", None)
    if callable(own):
        return own
    return lambda text: _SPACE.sub(" ", unicodedata.normalize("NFKC", text or "")).strip().casefold()


def distinctive(answer: str) -> bool:
    """Whether ``answer`` (in one form) is too distinctive to be in an honest prompt by chance."""
    return len(answer) >= MIN_LEAK_CHARS or (answer.isdigit() and len(answer) >= MIN_LEAK_DIGITS)


def test_answer_leaks(records: Sequence[TrialRecord], pair: Pair, normalize: Normalizer,
                      ) -> dict[tuple[str, tuple[str, ...]], str]:
    """Full-val candidates (by ``candidate_key``) whose text carries a test-only answer, with the reason."""
    forms = [(form, _test_only(pair, form)) for form in (normalize, raw_form)]
    forms = [(form, answers) for form, answers in forms if answers]
    out: dict[tuple[str, tuple[str, ...]], str] = {}
    if not forms:
        return out
    for record in records:
        if not record.on_full(FULL_VAL, len(pair.val)) or record.key in out:
            continue
        reason = next((r for form, answers in forms if (r := _leak_reason(record.prompt, pair.val, answers, form))),
                      None)
        if reason:
            out[record.key] = reason
    return out


def _test_only(pair: Pair, form: Normalizer) -> list[_Answer]:
    """The distinctive answers, in ``form``, that only the test split has (one example each)."""
    seen = {form(ex.answer) for ex in (*pair.train, *pair.val)}
    found: dict[str, Example] = {}
    for ex in pair.test:
        answer = form(ex.answer)
        if distinctive(answer) and answer not in seen:
            found.setdefault(answer, ex)
    return [_Answer(text, ex) for text, ex in found.items()]


def _leak_reason(prompt: Prompt, val: Sequence[Example], answers: Sequence[_Answer], form: Normalizer,
                 ) -> str | None:
    for ex in val:
        shown, question = form(prompt.render(ex)), form(ex.question)
        for answer in answers:
            if answer.found_in(shown) and not answer.found_in(question):
                return (f"its text carries the answer of test {row_label(answer.example.source_row, 'example')} "
                        f"({len(answer.text)} characters), which no train or val example has: it cannot win")
    return None

