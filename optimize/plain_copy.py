"""The engine's own plain copy of what a plugin hands the evaluator.

``Evaluator.score`` never uses a plugin's objects as they are: it copies the prompt's text and
provenance to exact ``str`` (``str.__str__``, which runs no code of a ``str`` subclass), checks
the provenance (``optimize.attribution``), replaces demos and a retrieval pool by its own stored
train examples, checks a demo cut (``Prompt.demo_chars``) and answer shapes (``Prompt.answer_shapes``; an
optimizer's only those of its train answers, and a length cut only to its longest train answer,
``check_train_shapes``), and refuses a prompt larger than
``MAX_PROMPT_CHARS`` (text) or ``MAX_PROVENANCE_CHARS`` / ``MAX_PROVENANCE_DEPTH`` (provenance)
with ``PromptTooLong``, before anything is charged, stored or recorded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from optimize.attribution import Attribution
from prompt_opt_api import (
    HeldOutAccessError,
    MAX_PROMPT_CHARS,
    MAX_PROVENANCE_CHARS,
    MAX_PROVENANCE_DEPTH,
    Example,
    Prompt,
    PromptTooLong,
    Provenance,
)
from prompt_opt_api.answer_shape import AnswerShapes, longest_answer
from prompt_opt_api.demo_cut import demo_chars_problem
from prompt_opt_api.demo_retrieval import DemoRetrieval

# (examples as a plugin passed them, what they are for the message, the one split allowed) -> own copies
OwnCopies = Callable[[Sequence[Example], str, "str | None"], tuple[Example, ...]]


def plain_text(value: object, what: str, limit: int | None = None) -> str:
    """An exact ``str`` copy of ``value`` (a ``str`` subclass loses its own methods here).

    Raises:
        TypeError: if ``value`` is not a string at all.
        PromptTooLong: if the copy is longer than ``limit`` characters.
    """
    if not isinstance(value, str):
        raise TypeError(f"a prompt's {what} must be a str, not {type(value).__name__}")
    # str.__str__ is str's own C slot: it copies the characters without calling anything
    # the subclass defines (str(x) would call an overridden __str__).
    text = str.__str__(value)
    if type(text) is not str:  # pragma: no cover - CPython guarantees it; kept as the rule's statement
        raise TypeError(f"a prompt's {what} could not be copied to a plain str")
    if limit is not None and len(text) > limit:
        raise PromptTooLong(f"a prompt's {what} is {len(text):,} characters; the engine scores at most {limit:,} "
                            "(nothing was charged)")
    return text


def plain_provenance(provenance: object, depth: int = 0) -> Provenance | None:
    """An exact copy of a prompt's provenance: plain ``str`` fields, parents copied too."""
    if provenance is None:
        return None
    if not isinstance(provenance, Provenance):
        raise TypeError(f"Prompt.provenance takes a Provenance, not {type(provenance).__name__}")
    if depth >= MAX_PROVENANCE_DEPTH:
        raise PromptTooLong(f"a prompt's provenance has more than {MAX_PROVENANCE_DEPTH} links of parents "
                            "(nothing was charged)")
    kind, author, detail, parent = provenance.kind, provenance.author, provenance.detail, provenance.parent
    return Provenance(kind=plain_text(kind, "provenance kind", MAX_PROVENANCE_CHARS),
                      author=plain_text(author, "author", MAX_PROVENANCE_CHARS),
                      detail=plain_text(detail, "provenance detail", MAX_PROVENANCE_CHARS),
                      parent=plain_provenance(parent, depth + 1))


def plain_prompt(prompt: object, own_copies: OwnCopies, attribution: Attribution | None) -> Prompt:
    """The engine's own copy of ``prompt``: exact ``str`` text and provenance (checked by
    ``attribution`` when given), demos replaced by the evaluator's stored train examples.
    Every attribute is read once, here."""
    if not isinstance(prompt, Prompt):
        raise TypeError(f"score() takes a Prompt, not {type(prompt).__name__}")
    text, demos, provenance, retrieval = prompt.text, tuple(prompt.demos), prompt.provenance, prompt.retrieval
    demo_chars, shapes = prompt.demo_chars, plain_shapes(prompt.answer_shapes)
    if (problem := demo_chars_problem(demo_chars)) is not None:
        raise ValueError(f"Prompt.demo_chars {problem}")
    text = plain_text(text, "text", MAX_PROMPT_CHARS)
    provenance = plain_provenance(provenance)
    if attribution is not None:
        provenance = attribution.checked(provenance, text)
    return Prompt(text=text, demos=own_copies(demos, "demo", "train"), provenance=provenance,
                  retrieval=plain_retrieval(retrieval, own_copies), demo_chars=demo_chars, answer_shapes=shapes)


def plain_shapes(shapes: object) -> AnswerShapes | None:
    """The engine's copy of a prompt's answer shapes: exact ``str`` shapes and an exact ``int`` cut,
    checked (``AnswerShapes.problem``)."""
    if shapes is None:
        return None
    if not isinstance(shapes, AnswerShapes):
        raise TypeError(f"Prompt.answer_shapes takes an AnswerShapes, not {type(shapes).__name__}")
    listed, max_chars = shapes.shapes, shapes.max_chars
    if not isinstance(listed, tuple):
        raise TypeError(f"AnswerShapes.shapes takes a tuple of str, not {type(listed).__name__}")
    if max_chars is not None and type(max_chars) is not int:  # a subclass of int runs no code of its own here
        raise TypeError(f"AnswerShapes.max_chars takes an int, not {type(max_chars).__name__}")
    copied = AnswerShapes(tuple(plain_text(s, "answer shape") for s in listed), max_chars)
    if (problem := copied.problem()) is not None:
        raise ValueError(f"Prompt.answer_shapes: {problem}")
    return copied


@dataclass(frozen=True)
class TrainTrim:
    """What an optimizer's prompt may trim its replies to: the train answers' shapes, and a cut
    only to the longest train answer's length (None without a non-empty train answer)."""

    shapes: frozenset[str]
    max_chars: int | None


def train_shapes(train: Iterable[Example]) -> TrainTrim:
    """The shapes and the longest length of the train answers (``TrainTrim``)."""
    answers = [ex.answer for ex in train]
    return TrainTrim(frozenset(AnswerShapes.from_answers(answers).shapes), longest_answer(answers) or None)


def check_train_shapes(shapes: AnswerShapes | None, allowed: TrainTrim) -> None:
    """Refuse answer shapes that are not shapes of the pair's train answers, and a length cut other
    than the longest train answer's length (``HeldOutAccessError``): a trim made from val answers
    would fit it to the split that chooses the winner."""
    for one in shapes.shapes if shapes is not None else ():
        if one not in allowed.shapes:
            raise HeldOutAccessError(
                f"Prompt.answer_shapes: {one[:80]!r} is not the shape of a train answer of this pair: answer shapes "
                "come from train (AnswerShapes.from_answers of the train answers), as demos do")
    if shapes is not None and shapes.max_chars is not None and shapes.max_chars != allowed.max_chars:
        raise HeldOutAccessError(
            f"Prompt.answer_shapes: max_chars {shapes.max_chars} is not the length of this pair's longest train "
            f"answer ({allowed.max_chars}): the length cut comes from train (AnswerShapes.from_answers of the train "
            "answers with length=True), as demos do")


def plain_retrieval(retrieval: Any, own_copies: OwnCopies) -> DemoRetrieval | None:
    """The engine's copy of a retrieval rule: exact ``k``, signature and ``distinct_answers``,
    a pool of this pair's train examples."""
    if retrieval is None:
        return None
    if not isinstance(retrieval, DemoRetrieval):
        raise TypeError(f"Prompt.retrieval takes a DemoRetrieval, not {type(retrieval).__name__}")
    k, pool, signature, distinct = retrieval.k, tuple(retrieval.pool), retrieval.signature, retrieval.distinct_answers
    if type(k) is not int or k < 1:
        raise ValueError(f"demo retrieval needs k >= 1, got {k!r}")
    if type(distinct) is not bool:
        raise TypeError(f"demo retrieval's distinct_answers takes a bool, not {type(distinct).__name__}")
    return DemoRetrieval(k=k, pool=own_copies(pool, "retrieval pool example", "train"),
                         signature=plain_text(signature, "signature", MAX_PROVENANCE_CHARS),
                         distinct_answers=distinct)
