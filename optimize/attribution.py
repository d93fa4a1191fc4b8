"""The engine's check of who a plugin says wrote a prompt (``Prompt.provenance``).

Authorship is data, not a string to parse: the engine records ``provenance.author`` as
the ``author`` column and, with a panel, scores each member's best prompt on test. So
the evaluator an optimizer gets checks every provenance before anything is scored:

* a prompt without one is credited to the optimizer (kind ``optimizer``, author its name);
* an unknown kind is refused;
* an advisor-written kind (``ADVISOR_KINDS``) must name one of the run's advisors (a
  panel's members): a made-up author is refused, so it can neither appear in the results
  nor cost a test evaluation;
* any other kind keeps its parent's author (a rule edit of a critic prompt is the
  critic's writer's) or, without a parent, names itself (``manual``, ``dataset``, ...;
  ``optimizer``: the optimizer's name).

A refusal is a ``ValueError`` raised by ``score`` before anything is charged.

Under a panel, credit to a member is also checked against what that member wrote: the
advisor view records every reply it hands out (``ReplyLedger``), and a prompt credited to a
member keeps the credit only when its text came out of that member's replies (see
``ReplyLedger.wrote``); otherwise it is credited to the optimizer, with the claim in its
detail (``optimizer:<name>/claimed:<member>``). It is still scored: only the credit moves.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass

from prompt_opt_api import ADVISOR_KINDS, PROVENANCE_KINDS, QUESTION_PLACEHOLDER, Provenance

# A passage of a reply that a derived prompt carries whole is at least this long (shorter pieces,
# "1." or a lone "{question}", are in every reply).
MIN_PASSAGE_CHARS = 16
# What separates the passages of a reply: markup tags, DSPy's field markers, code fences, line breaks.
_MARKUP = re.compile(r"<[^<>\n]{0,80}>|\[\[ ## [^\n]{0,80}? ## \]\]|```|\n")
_LIST_MARK = re.compile(r"^(?:\d{1,3}[.)]|[-*•])\s+")
_QUOTES = " \t`\"'«»“”„"


def _flat(text: str) -> str:
    return " ".join(text.split())


def passages(reply: str) -> tuple[str, ...]:
    """A reply's passages: the pieces between markup and line breaks, white space collapsed,
    list marks and surrounding quotes dropped, at least ``MIN_PASSAGE_CHARS`` long."""
    out = []
    for piece in _MARKUP.split(reply):
        piece = _LIST_MARK.sub("", _flat(piece)).strip(_QUOTES)
        if len(piece) >= MIN_PASSAGE_CHARS:
            out.append(piece)
    return tuple(out)


class ReplyLedger:
    """The replies an advisor view handed out during one pair, by the member that wrote them.

    ``wrote(member, text)`` is the rule for "came out of the member's replies", white space
    collapsed on both sides: the text is part of one of the member's replies (and says more
    than ``{question}``), or it carries one of the member's passages whole (a derived prompt:
    a rule edit appends clauses to the member's prompt, DSPy puts ``{question}`` before it).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._replies: dict[str, list[str]] = {}
        self._passages: dict[str, set[str]] = {}

    def add(self, member: str, reply: str) -> None:
        with self._lock:
            self._replies.setdefault(member, []).append(_flat(reply))
            self._passages.setdefault(member, set()).update(passages(reply))

    def wrote(self, member: str, text: str) -> bool:
        """Whether ``text`` came out of ``member``'s replies (see the class docstring)."""
        flat = _flat(text)
        with self._lock:
            replies, own = list(self._replies.get(member, ())), set(self._passages.get(member, ()))
        if _flat(flat.replace(QUESTION_PLACEHOLDER, " ")) and any(flat in reply for reply in replies):
            return True
        return any(passage in flat for passage in own)


@dataclass(frozen=True)
class Attribution:
    """Who may be named as an author while one optimizer works on one pair.

    Attributes:
        optimizer: The optimizer's name (the author of prompts handed in without provenance).
        advisors: Names of the run's advisors (a panel's members); empty without an advisor.
        replies: Under a panel, the replies each member handed out: a member keeps credit only
            for text that came out of its own replies. None: not checked (a single advisor).
    """

    optimizer: str
    advisors: frozenset[str] = frozenset()
    replies: ReplyLedger | None = None

    @classmethod
    def of(cls, optimizer: str, advisor_names: Iterable[str] = (), replies: ReplyLedger | None = None,
           ) -> Attribution:
        return cls(optimizer=optimizer, advisors=frozenset(advisor_names), replies=replies)

    def checked(self, provenance: Provenance | None, text: str = "") -> Provenance:
        """``provenance`` if it holds (see the module docstring), the optimizer's when None, or
        when it credits a panel member whose replies ``text`` did not come out of.

        Raises:
            ValueError: for an unknown kind or an author the kind does not allow.
        """
        if provenance is None:
            return Provenance(kind="optimizer", author=self.optimizer)
        link: Provenance | None = provenance
        while link is not None:
            self._check_one(link)
            link = link.parent
        member = provenance.author
        if self.replies is not None and member in self.advisors and not self.replies.wrote(member, text):
            return Provenance(kind="optimizer", author=self.optimizer, detail=f"claimed:{member}")
        return provenance

    def _check_one(self, p: Provenance) -> None:
        if p.kind not in PROVENANCE_KINDS:
            raise ValueError(f"prompt provenance: unknown kind {p.kind!r} (known: {', '.join(PROVENANCE_KINDS)})")
        if p.kind in ADVISOR_KINDS:
            if p.author not in self.advisors:
                raise ValueError(f"prompt provenance: {p.kind!r} prompt credited to {p.author!r}, who is not one "
                                 f"of this run's advisors ({sorted(self.advisors) or 'none'})")
            return
        expected = (p.parent.author if p.parent is not None
                    else self.optimizer if p.kind == "optimizer" else p.kind)
        if p.author != expected:
            raise ValueError(f"prompt provenance: a {p.kind!r} prompt is credited to {p.author!r}, "
                             f"expected {expected!r} (the author of what it was derived from, or the kind itself)")
