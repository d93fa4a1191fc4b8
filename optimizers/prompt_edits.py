"""Prompt edits that need no LLM.

A weak advisor (the local 1.5B) rarely writes a better prompt from scratch, so the
critic also tries edits derived from the data: an output-format hint built from the
train answers (character classes, length, date or number pattern, letter case,
script), a "copy exactly as printed" clause, a "value only" clause and a field-location
hint from the answer boxes. Clause texts live in ``meta_prompts.py``.

When format errors dominate the base prompt's val answers (``format_errors_dominate``) the
format edit comes first, and where no date or common shape pins the answers it also
names the commonest shapes with digits of the train answers (``99.99``, ``ZZ999.99``):
patterns, not values, so it teaches the form without an answer to copy.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from optimizers import meta_prompts as text
from prompt_opt_api import Example, ExampleResult, Prompt, Provenance, derived_provenance
from prompt_opt_api.error_classes import FORMAT

_DATE = re.compile(r"^\d{2}\.\d{2}\.\d{4}$")


def _script(ch: str) -> str:
    if ch.isdigit():
        return "digit"
    if ch.isalpha():
        return "cyrillic" if "CYRILLIC" in unicodedata.name(ch, "") else "latin"
    return "other"


def shape(value: str) -> str:
    """A value's shape: digits -> 9, Cyrillic letters -> Я, Latin letters -> Z, rest kept."""
    out = []
    for ch in value:
        kind = _script(ch)
        out.append({"digit": "9", "cyrillic": "Я", "latin": "Z"}.get(kind, ch))
    return "".join(out)


@dataclass(frozen=True)
class AnswerProfile:
    """What the train answers of a pair look like."""

    n: int
    min_len: int
    max_len: int
    all_dates: bool
    common_shape: str | None  # one shape shared by every answer (e.g. 999-999-999 99)
    has_cyrillic: bool
    has_latin: bool
    upper: bool  # every letter upper case

    @property
    def pinned(self) -> bool:
        """Whether the format hint pins every answer's form (a date, or one shape with digits)."""
        return self.all_dates or bool(self.common_shape and "9" in self.common_shape)

    def format_hint(self) -> str | None:
        """One sentence describing the expected output, or None when nothing is regular."""
        if self.n == 0:
            return None
        if self.all_dates:
            return text.FORMAT_DATE
        parts = []
        if self.common_shape and any(c == "9" for c in self.common_shape):
            parts.append(text.FORMAT_SHAPE.format(shape=self.common_shape))
        if self.has_cyrillic and not self.has_latin:
            parts.append(text.FORMAT_CYRILLIC_UPPER if self.upper else text.FORMAT_CYRILLIC)
        elif self.upper and (self.has_cyrillic or self.has_latin):
            parts.append(text.FORMAT_UPPER)
        if self.max_len <= 40 and not self.common_shape:
            parts.append(text.FORMAT_LENGTH.format(lo=self.min_len, hi=self.max_len))
        return " ".join(parts) or None


def answer_profile(answers: Sequence[str]) -> AnswerProfile:
    """Profile the (train) answers of one pair."""
    answers = [a.strip() for a in answers if a.strip()]
    if not answers:
        return AnswerProfile(0, 0, 0, False, None, False, False, False)
    shapes = {shape(a) for a in answers}
    letters = [ch for a in answers for ch in a if ch.isalpha()]
    return AnswerProfile(
        n=len(answers),
        min_len=min(len(a) for a in answers),
        max_len=max(len(a) for a in answers),
        all_dates=all(_DATE.match(a) for a in answers),
        common_shape=shapes.pop() if len(shapes) == 1 else None,
        has_cyrillic=any(_script(ch) == "cyrillic" for ch in letters),
        has_latin=any(_script(ch) == "latin" for ch in letters),
        upper=bool(letters) and all(ch.isupper() for ch in letters),
    )


def location_hint(examples: Sequence[Example]) -> str | None:
    """Where on the page the field usually is (from train answer boxes), or None."""
    from PIL import Image  # lazy

    rows, cols = [], []
    for ex in examples:
        if ex.bbox is None:
            continue
        with Image.open(ex.image) as img:  # reads the header only
            width, height = img.size
        x = (ex.bbox[0] + ex.bbox[2]) / 2 / width
        y = (ex.bbox[1] + ex.bbox[3]) / 2 / height
        rows.append(0 if y < 1 / 3 else 1 if y < 2 / 3 else 2)
        cols.append(0 if x < 0.5 else 1)
    if not rows or len(set(rows)) > 1:
        return None
    side = text.LOCATION_SIDES[cols[0]] if len(set(cols)) == 1 else ""
    return text.LOCATION.format(where=text.LOCATION_ROWS[rows[0]], side=side).replace("  ", " ")


def format_errors_dominate(errors: Sequence[ExampleResult]) -> bool:
    """Whether format errors (``error_classes.FORMAT``) are at least 2 and no other class is commoner."""
    counts = Counter(r.error_class for r in errors if r.error_class)
    return counts[FORMAT] >= 2 and counts[FORMAT] == max(counts.values())


def shapes_hint(answers: Sequence[str], limit: int = 3) -> str | None:
    """The ``limit`` commonest shapes with digits of ``answers`` as a clause (in English when
    no answer has a Cyrillic letter), or None when no answer has a digit."""
    shapes = Counter(shape(a.strip()) for a in answers if any(ch.isdigit() for ch in a))
    if not shapes:
        return None
    listed = "; ".join(s for s, _ in shapes.most_common(limit))
    cyrillic = any(_script(ch) == "cyrillic" for a in answers for ch in a)
    return (text.FORMAT_SHAPES if cyrillic else text.FORMAT_SHAPES_LATIN).format(shapes=listed)


def _format_clause(train: Sequence[Example], profile: AnswerProfile, dominate: bool) -> str | None:
    """The format edit's clause: the hint, with the commonest shapes when format errors dominate
    and the hint does not pin the form."""
    hint = profile.format_hint()
    if dominate and not profile.pinned and (shapes := shapes_hint([ex.answer for ex in train])) is not None:
        return f"{hint} {shapes}" if hint else shapes
    return hint


RULE_EDIT_KINDS = ("value-only", "copy-exactly", "format", "location", "cyrillic-letters", "all")


def rule_edits(base: Prompt, train: Sequence[Example], kinds: Sequence[str] = RULE_EDIT_KINDS,
               errors: Sequence[ExampleResult] = ()) -> list[Prompt]:
    """Edits of ``base`` that need no LLM: one per clause that applies and that ``base``
    does not already say, plus (``all``) every such clause at once.

    Args:
        base: The prompt to edit (its demos are kept).
        train: Train examples (answers and boxes the hints are derived from).
        kinds: Which edits to make (``RULE_EDIT_KINDS``); ``all`` combines every
            applicable clause, whichever single edits are listed.
        errors: ``base``'s val answers, classified: when format errors dominate, the format
            edit comes first and names the answers' shapes (the module docstring).
    """
    profile = answer_profile([ex.answer for ex in train])
    dominate = format_errors_dominate(errors)
    clauses = [("value-only", text.VALUE_ONLY), ("copy-exactly", text.COPY_EXACTLY)]
    if (hint := _format_clause(train, profile, dominate)) is not None:
        clauses.insert(0 if dominate else len(clauses), ("format", hint))
    if (where := location_hint(train)) is not None:
        clauses.append(("location", where))
    if profile.has_cyrillic and profile.upper:
        clauses.append(("cyrillic-letters", text.CYRILLIC_LOOKALIKES))
    said = base.text.casefold()
    # a clause whose first three words the prompt already has adds nothing
    clauses = [(name, clause) for name, clause in clauses if " ".join(clause.split()[:3]).casefold() not in said]
    out, seen = [], {base.text}
    for name, clause in clauses:
        edited = f"{base.text.rstrip()} {clause}"
        if name in kinds and edited not in seen:
            seen.add(edited)
            out.append(Prompt(edited, demos=base.demos, provenance=_edit_provenance(base, name),
                              answer_shapes=base.answer_shapes))
    if "all" in kinds and len(clauses) > 1:  # every clause at once: the edits often help together
        combined = " ".join([base.text.rstrip(), *(c for _, c in clauses)])
        if combined not in seen:
            out.append(Prompt(combined, demos=base.demos, provenance=_edit_provenance(base, "all"),
                              answer_shapes=base.answer_shapes))
    return out


def _edit_provenance(base: Prompt, kind: str) -> Provenance:
    """A rule edit of ``base``: the author stays whoever wrote the base prompt (``rule`` when unknown)."""
    return derived_provenance(base.provenance, "rule", kind)
