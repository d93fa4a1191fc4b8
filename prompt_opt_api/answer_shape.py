"""Answer shapes: a reply trimmed to the shape the pair's train answers have.

A small reader often writes the right value plus more: a date with its time
(``25/12/2018 8:13:39 PM`` for ``25/12/2018``), a currency before a total. A text's *shape*
is its characters classed (a digit ``9``, a letter of any script ``A``, white space a space,
anything else itself) with each run of one class written once, after the metric's surrounding
punctuation (``prompt_opt_api.metric.SURROUNDING``) is stripped: ``25/12/2018`` is ``9/9/9``,
``RM 12.00`` is ``A 9.9``, ``15 JUN 18`` is ``9 A 9``. ``AnswerShapes.trim`` keeps the longest
piece of a reply whose shape is one of the train answers' shapes; the trim is a pure function
of the reply, so a prompt with shapes sends the request one without them sends, and its
answers are the same cached answers (``Prompt.answer_shapes`` is not part of the answer key).

A reader may also copy the lines after the value (an address followed by the phone, the tax
number, the items). ``AnswerShapes.max_chars`` cuts a reply, after the shape trim, to the
length of the longest train answer; it is a pure function of the reply too, with or without shapes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from prompt_opt_api.metric import SURROUNDING

SHAPE_TRIM = "train-answer-shapes/v1"  # the classes and the trim below; named in a candidate's identity
MAX_SHAPES = 64  # more distinct shapes than this: free text, not a form to trim to
MAX_SHAPE_CHARS = 200
MAX_CUT_CHARS = 10_000  # the largest length cut a book or a prompt may hold


def char_class(char: str) -> str:
    """A character's class: ``9`` a digit, ``A`` a letter (any script), a space for white space,
    else the character itself."""
    if char.isdigit():
        return "9"
    if char.isalpha():
        return "A"
    if char.isspace():
        return " "
    return char


def class_runs(text: str) -> list[tuple[str, int, int]]:
    """``text``'s runs of one class: ``(class, start, end)``, in order."""
    runs: list[tuple[str, int, int]] = []
    for i, char in enumerate(text):
        cls = char_class(char)
        if runs and runs[-1][0] == cls:
            runs[-1] = (cls, runs[-1][1], i + 1)
        else:
            runs.append((cls, i, i + 1))
    return runs


def shape(text: str) -> str:
    """``text``'s shape: stripped of the metric's surrounding punctuation, each run of one class as its class."""
    return "".join(cls for cls, _, _ in class_runs(text.strip(SURROUNDING)))


def shapes_problem(shapes: object) -> str | None:
    """What is wrong with ``shapes`` as a list of answer shapes (a prompt book's ``answer_shapes``),
    in one line, or None: 1 to ``MAX_SHAPES`` strings, each 1 to ``MAX_SHAPE_CHARS`` characters, with
    no digit or letter but ``9`` and ``A``, no white space but a space, no class twice in a row."""
    if isinstance(shapes, (str, bytes)) or not isinstance(shapes, (list, tuple)):
        return f"must be a list of shapes, not {type(shapes).__name__}"
    if not 1 <= len(shapes) <= MAX_SHAPES:
        return f"must list 1 to {MAX_SHAPES} shapes, got {len(shapes)}"
    for i, one in enumerate(shapes, 1):
        if (problem := _shape_problem(one)) is not None:
            return f"shape {i} {problem}"
    return None


def _shape_problem(one: object) -> str | None:
    if type(one) is not str:
        return f"must be a string, not {type(one).__name__}"
    if not 1 <= len(one) <= MAX_SHAPE_CHARS:
        return f"must be 1 to {MAX_SHAPE_CHARS} characters, got {len(one)}"
    for char in one:
        if char_class(char) != char:
            return (f"holds {char!r}: a shape writes a digit as 9, a letter as A and white space as one space "
                    f"({one[:40]!r})")
    for a, b in zip(one, one[1:]):
        if a == b:
            return f"holds {a!r} twice in a row: a shape writes each run of one class once ({one[:40]!r})"
    return None


def max_chars_problem(value: object) -> str | None:
    """What is wrong with ``value`` as a length cut (a prompt book's ``answer_max_chars``), in one
    line, or None: an integer from 1 to ``MAX_CUT_CHARS`` (not true or false)."""
    if type(value) is not int:
        shown = json.dumps(value) if isinstance(value, (bool, str)) else type(value).__name__
        return f"must be an integer from 1 to {MAX_CUT_CHARS}, not {shown}"
    if not 1 <= value <= MAX_CUT_CHARS:
        return f"must be an integer from 1 to {MAX_CUT_CHARS}, got {value}"
    return None


def longest_answer(answers: Iterable[str]) -> int:
    """The length in characters of the longest of ``answers`` (0 without one)."""
    return max(map(len, answers), default=0)


@dataclass(frozen=True)
class AnswerShapes:
    """The shapes a pair's train answers have (sorted, distinct), the length cut, and the trim to them.

    Attributes:
        shapes: The shapes (``shape``); none: no shape trim.
        max_chars: A reply (stripped of the surrounding punctuation) longer than this is cut to its
            first ``max_chars`` characters after the shape trim; None: no length cut.
    """

    shapes: tuple[str, ...] = ()
    max_chars: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "shapes", tuple(sorted(set(self.shapes))))

    @classmethod
    def from_answers(cls, answers: Iterable[str], shapes: bool = True, length: bool = False) -> AnswerShapes:
        """The trim ``answers`` (a pair's train answers) make: their shapes when ``shapes`` (an empty
        answer has none), and when ``length`` the cut to the longest one's length (none when all are empty)."""
        answers = list(answers)
        longest = longest_answer(answers) if length else 0
        return cls(tuple(s for s in (shape(a) for a in answers) if s) if shapes else (), longest or None)

    def problem(self) -> str | None:
        """What keeps this trim from a prompt: neither shapes nor a cut, shapes that fail
        ``shapes_problem`` (e.g. more than ``MAX_SHAPES``), or a cut that fails ``max_chars_problem``."""
        if not self.shapes and self.max_chars is None:
            return "holds neither shapes nor a length cut"
        if self.shapes and (problem := shapes_problem(self.shapes)) is not None:
            return problem
        if self.max_chars is not None and (problem := max_chars_problem(self.max_chars)) is not None:
            return f"max_chars {problem}"
        return None

    def identity(self) -> dict[str, Any]:
        """What this trim is in a candidate's identity (never in an answer key); the cut only when set."""
        cut = {"max_chars": self.max_chars} if self.max_chars is not None else {}
        return {"shapes": list(self.shapes), "trim": SHAPE_TRIM, **cut}

    def trim(self, reply: str) -> str:
        """``reply`` trimmed to the shapes (``trim_to_shapes``), then, with ``max_chars``, stripped of
        the surrounding punctuation and cut to its first ``max_chars`` characters (stripped again) when
        it is longer."""
        trimmed = self.trim_to_shapes(reply)
        if self.max_chars is None:
            return trimmed
        stripped = trimmed.strip(SURROUNDING)
        return stripped[: self.max_chars].strip(SURROUNDING) if len(stripped) > self.max_chars else trimmed

    def trim_to_shapes(self, reply: str) -> str:
        """``reply`` as the shapes allow: unchanged when it is empty or its shape is one of the
        shapes; else its longest piece (stripped of the surrounding punctuation, starting and ending
        on class-run boundaries) whose shape is one of them, the first on a tie; unchanged when none is."""
        stripped = reply.strip(SURROUNDING)
        wanted = set(self.shapes)
        if not stripped or not wanted or shape(stripped) in wanted:
            return reply
        runs = class_runs(stripped)
        longest = max(map(len, wanted))
        best = ""
        for i, (_, start, _) in enumerate(runs):
            if stripped[start] in SURROUNDING:
                continue  # a piece starting here is stripped to one starting later
            piece_shape = ""
            for cls, _, end in runs[i : i + longest]:
                piece_shape += cls
                if stripped[end - 1] not in SURROUNDING and piece_shape in wanted and end - start > len(best):
                    best = stripped[start:end]
        return best or reply


def shapes_note(count: int, max_chars: int | None = None) -> str:
    """Answer shapes and the length cut in words, as books, results and reports name them."""
    if not count:
        return f"replies cut to {max_chars} characters, the longest train answer" if max_chars else ""
    shaped = f"replies trimmed to the train answers' shapes ({count} shape{'' if count == 1 else 's'})"
    return shaped + (f" and cut to {max_chars} characters" if max_chars else "")
