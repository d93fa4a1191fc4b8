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
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from prompt_opt_api import ADVISOR_KINDS, PROVENANCE_KINDS, Provenance


@dataclass(frozen=True)
class Attribution:
    """Who may be named as an author while one optimizer works on one pair.

    Attributes:
        optimizer: The optimizer's name (the author of prompts handed in without provenance).
        advisors: Names of the run's advisors (a panel's members); empty without an advisor.
    """

    optimizer: str
    advisors: frozenset[str] = frozenset()

    @classmethod
    def of(cls, optimizer: str, advisor_names: Iterable[str] = ()) -> Attribution:
        return cls(optimizer=optimizer, advisors=frozenset(advisor_names))

    def checked(self, provenance: Provenance | None) -> Provenance:
        """``provenance`` if it holds (see the module docstring), the optimizer's when None.

        Raises:
            ValueError: for an unknown kind or an author the kind does not allow.
        """
        if provenance is None:
            return Provenance(kind="optimizer", author=self.optimizer)
        link: Provenance | None = provenance
        while link is not None:
            self._check_one(link)
            link = link.parent
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
