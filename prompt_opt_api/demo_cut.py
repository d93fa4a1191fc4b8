"""Demo pages cut around their answers: more demos for the cost of fewer whole pages.

A model that reads text re-reads every demo's page with each request; the page asked about
and the demos' answers are what matter, so a demo's page can be cut to a window around its
answer (``Prompt.demo_chars``, or a model-wide setting). The window is one function, here,
for every model that cuts and for the tests' scripted readers; its version
(``DEMO_WINDOW``) is named in every cache key of a cut request.
"""

from __future__ import annotations

import re

DEMO_WINDOW = "answer-centred/v2"  # the window below; named with every cut in a cache key
MIN_DEMO_CHARS = 40  # a shorter window holds little more than the answer itself
DEMO_MARGIN = 20  # characters of context kept on each side of a demo's answer, at least


def demo_chars_problem(value: object) -> str | None:
    """What is wrong with ``value`` as a demo cut (characters per demo page), or None when it is
    null or a whole number of at least ``MIN_DEMO_CHARS``."""
    if value is None:
        return None
    if type(value) is not int:
        return f"must be a whole number of characters (at least {MIN_DEMO_CHARS}) or null, not {value!r}"
    if value < MIN_DEMO_CHARS:
        return f"must be at least {MIN_DEMO_CHARS} characters or null, got {value}"
    return None


def answer_window(text: str, answer: str, chars: int) -> str:
    """At most ``chars`` characters of ``text`` centred on ``answer``, widened to hold it whole with
    ``DEMO_MARGIN`` characters each side; centred on its longest word found when the page misreads
    the whole value; the page's start when neither is found (window ``DEMO_WINDOW``)."""
    if len(text) <= chars:
        return text
    found = re.search(re.escape(answer), text, re.IGNORECASE)
    if found is None:  # OCR misread the value: centre on its longest word found
        words = sorted(re.findall(r"\w{3,}", answer), key=len, reverse=True)
        found = next((m for m in (re.search(re.escape(w), text, re.IGNORECASE) for w in words) if m), None)
    if found is None:
        return text[:chars]
    chars = max(chars, found.end() - found.start() + 2 * DEMO_MARGIN)
    start = (found.start() + found.end() - chars) // 2
    start = max(0, min(start, len(text) - chars))
    return text[start : start + chars]
