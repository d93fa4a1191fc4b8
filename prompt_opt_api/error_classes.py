"""What kind of mistake a wrong answer is, from the answer, the prediction, the answers of the
demos its request showed and the page's text as the answer model reads it.

One class per wrong answer, the first that applies in this order (the right value in another
form first, then where a wrong value came from):

* ``empty``: nothing is left of the prediction once normalized (``fold``).
* ``other_script``: the answer once Latin and Cyrillic look-alike letters are read as one
  alphabet (``авекмнорстухіјѕ`` as ``abekmhopctyxijs``, compared case folded, by format key),
  or a prediction that mixes Latin and Cyrillic letters where the answer's letters are of
  one script.
* ``format``: the right value written another way: the same format key (``format_key``: a
  trailing time and currency markers dropped, then letters and digits only), or the same
  runs of letters and digits in another order (a date written year first).
* ``copied_demo``: equal, as the metric compares (``same``), to the answer of one of the
  request's demos (fixed, or retrieved for this page) that is not this page's own answer.
* ``chatty``: the answer inside extra words, or over 3 times the answer's length and over
  20 characters.
* ``elsewhere_on_page``: a span of the page's text that is not the answer: found in it
  (both normalized) and at least 4 characters long or a whole token there (not inside a
  longer run of letters and digits).
* ``not_on_page``: none of these, on a page whose text was searched.
* ``other``: none of these, for a model that reads pixels (no page text to search).

A demo set is *copied* (``copies_a_demo``) when one demo answer is the prediction on more
than a quarter of the pages whose own answer it is not.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from prompt_opt_api.data import ExampleResult
from prompt_opt_api.metric import normalize_answer

EMPTY = "empty"
OTHER_SCRIPT = "other_script"
FORMAT = "format"
COPIED_DEMO = "copied_demo"
CHATTY = "chatty"
ELSEWHERE_ON_PAGE = "elsewhere_on_page"
NOT_ON_PAGE = "not_on_page"
OTHER = "other"
ERROR_CLASSES = (EMPTY, OTHER_SCRIPT, FORMAT, COPIED_DEMO, CHATTY, ELSEWHERE_ON_PAGE, NOT_ON_PAGE, OTHER)

# A demo set is copied when one demo answer is the prediction on more than this share of the
# pages whose own answer it is not.
COPY_SHARE = 0.25

_LOOKALIKES = str.maketrans("авекмнорстухіјѕ", "abekmhopctyxijs")  # case folded Cyrillic -> Latin
_TIME = re.compile(r"(?:[\s,;]+|(?<=\d)t)\d{1,2}:\d{2}(?::\d{2})?(?:\s*[ap]\.?\s*m\.?)?$")
_CURRENCY = r"(?:rm|myr|sgd|usd|eur|gbp|rub|руб|р|\$|€|£|₽|¥)"
_CURRENCY_BEFORE = re.compile(rf"^{_CURRENCY}\.?\s*(?=[-\d.,])")
_CURRENCY_AFTER = re.compile(rf"(?<=\d)\s*{_CURRENCY}\.?$")
_RUNS = re.compile(r"[^\W_]+")


def fold(text: str) -> str:
    """``text`` as the default CER metric normalizes it (``normalize_answer``, case folded)."""
    return normalize_answer(text)


def format_key(text: str) -> str:
    """The value without its format: folded, a trailing time (``10:30``, ``10:30:00 pm``) and a
    currency marker before or after the number (``RM``, ``$``, ``руб.``) dropped, then only
    its letters and digits kept."""
    return "".join(_RUNS.findall(_without_time_or_currency(fold(text))))


def _without_time_or_currency(folded: str) -> str:
    folded = _TIME.sub("", folded)
    return _CURRENCY_AFTER.sub("", _CURRENCY_BEFORE.sub("", folded))


def _scripts(text: str) -> set[str]:
    return {"cyrillic" if "CYRILLIC" in unicodedata.name(ch, "") else "latin"
            for ch in text if ch.isalpha() and unicodedata.name(ch, "").startswith(("LATIN", "CYRILLIC"))}


def is_other_script(answer: str, prediction: str) -> bool:
    """Whether the prediction is the answer in look-alike letters of the other script, or mixes
    Latin and Cyrillic letters where the answer's letters are of one script."""
    got, want = fold(prediction), fold(answer)
    if format_key(got) != format_key(want) and (
            format_key(got.translate(_LOOKALIKES)) == format_key(want.translate(_LOOKALIKES)) != ""):
        return True
    return len(_scripts(got)) == 2 and len(_scripts(want)) == 1


def is_format(answer: str, prediction: str) -> bool:
    """Whether the prediction is the answer's value in another format (the module docstring)."""
    key = format_key(prediction)
    if key and key == format_key(answer):
        return True
    runs = sorted(_RUNS.findall(_without_time_or_currency(fold(prediction))))
    return len(runs) >= 2 and runs == sorted(_RUNS.findall(_without_time_or_currency(fold(answer))))


def is_chatty(answer: str, prediction: str) -> bool:
    """Whether the prediction holds the answer inside extra words, or is over 3 times as long and
    over 20 characters."""
    got, want = fold(prediction), fold(answer)
    return (want in got and len(got) > len(want)) or (len(got) > 3 * len(want) and len(got) > 20)


def on_page(prediction: str, page_text: str) -> bool:
    """Whether the prediction is a span of the page's text: found in it, both folded, and at
    least 4 characters long or a whole token there."""
    got, page = fold(prediction), fold(page_text)
    if not got or got not in page:
        return False
    return len(got) >= 4 or re.search(rf"(?<![^\W_]){re.escape(got)}(?![^\W_])", page) is not None


def classify_error(answer: str, prediction: str, *, demo_answers: Iterable[str] = (), page_text: str | None = None,
                   same: Callable[[str, str], bool] | None = None) -> str | None:
    """The class of a wrong prediction (``ERROR_CLASSES``), or None for a right one.

    Args:
        answer: The page's true answer.
        prediction: What the model answered.
        demo_answers: The answers of the demos the request showed (fixed or retrieved).
        page_text: The page's text as the model reads it; None for a model that reads pixels.
        same: The metric's equality, ``metric.exact(reference, prediction)`` (default: ``fold``
            equality, as the default CER metric compares).
    """
    same = same or (lambda a, b: fold(a) == fold(b))
    if same(answer, prediction):
        return None
    if not fold(prediction):
        return EMPTY
    if is_other_script(answer, prediction):
        return OTHER_SCRIPT
    if is_format(answer, prediction):
        return FORMAT
    if any(same(demo, prediction) and not same(demo, answer) for demo in demo_answers):
        return COPIED_DEMO
    if is_chatty(answer, prediction):
        return CHATTY
    if page_text is None:
        return OTHER
    return ELSEWHERE_ON_PAGE if on_page(prediction, page_text) else NOT_ON_PAGE


def class_counts(classes: Iterable[str]) -> dict[str, int]:
    """How many of each class, every class named (0 included), in ``ERROR_CLASSES`` order."""
    seen = Counter(classes)
    return {name: seen.get(name, 0) for name in ERROR_CLASSES}


@dataclass(frozen=True)
class RepeatedCopy:
    """The demo answer predicted most often on pages whose answer it is not.

    Attributes:
        value: The copied answer, folded.
        pages: Pages answered with it (class ``copied_demo``).
        others: Pages whose own answer it is not (what ``pages`` is a share of).
    """

    value: str
    pages: int
    others: int

    @property
    def too_often(self) -> bool:
        """On more than ``COPY_SHARE`` of the pages whose answer it is not."""
        return self.pages > COPY_SHARE * self.others


def repeated_copy(results: Sequence[ExampleResult]) -> RepeatedCopy | None:
    """The most repeated copied demo answer among ``results`` (the earliest on a tie); None when
    no prediction copied a demo."""
    copied = Counter(fold(r.prediction) for r in results if r.error_class == COPIED_DEMO)
    if not copied:
        return None
    value, pages = copied.most_common(1)[0]
    return RepeatedCopy(value, pages, sum(fold(r.answer) != value for r in results))


def copies_a_demo(results: Sequence[ExampleResult]) -> bool:
    """Whether one demo answer is the prediction on more than a quarter of the pages whose answer it is not."""
    found = repeated_copy(results)
    return found is not None and found.too_often
