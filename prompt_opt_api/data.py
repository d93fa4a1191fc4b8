"""Value types shared by tasks, models, optimizers and the engine.

Everything here is a frozen dataclass: optimizers return new values, nothing is
edited in place, and every value can be turned into JSON for cache keys and logs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prompt_opt_api.demo_retrieval import DemoRetrieval

QUESTION_PLACEHOLDER = "{question}"


@dataclass(frozen=True)
class Example:
    """One labelled question about one document image.

    Attributes:
        image: Absolute path of the image (already validated to lie inside the data folder).
        question: The data set's own question text.
        answer: Ground-truth field value.
        doc_class: Document class, e.g. ``passport``.
        question_type: Field asked for, e.g. ``Фамилия``.
        bbox: Pixel box ``(x1, y1, x2, y2)`` of the answer, or None.
        image_sha256: Hex sha256 of the image bytes (cache keys use it, never the path).
        source_row: Where the example came from, ``"file.csv:line"``, for error messages.
    """

    image: Path
    question: str
    answer: str
    doc_class: str
    question_type: str
    bbox: tuple[float, float, float, float] | None
    image_sha256: str
    source_row: str = ""

    @property
    def pair_key(self) -> str:
        """The pair's display name, ``"<doc type> <question type>"``."""
        return pair_key(self.doc_class, self.question_type)

    @property
    def pair_identity(self) -> tuple[str, str]:
        """The pair this example belongs to: ``(doc_class, question_type)``."""
        return (self.doc_class, self.question_type)

    def identity(self) -> dict[str, Any]:
        """What makes this example's model input: used in cache keys (no paths)."""
        return {"image_sha256": self.image_sha256, "question": self.question}


def pair_key(doc_class: str, question_type: str) -> str:
    """The seed's display name for a pair: ``"<doc type> <question type>"``.

    For display and file rows only: a pair's identity is the ``(doc_class,
    question_type)`` tuple, and the task loader refuses two pairs that display alike.
    """
    return f"{doc_class} {question_type}"


@dataclass(frozen=True)
class Prompt:
    """A prompt candidate.

    ``text`` is a template: the literal ``{question}`` is replaced by each example's own
    question (so the data set's own question is the prompt ``"{question}"``); no other
    braces are interpreted, so prompts may contain JSON examples freely.

    Attributes:
        text: Prompt template.
        demos: Few-shot demonstrations (train examples with their answers).
        origin: Who wrote it, e.g. ``manual``, ``dataset-question``, ``advisor:gpt4o/step3``.
        retrieval: Demos chosen per example from a train pool (``demo_retrieval``) instead
            of fixed ``demos``; ``for_example`` resolves it.
    """

    text: str
    demos: tuple[Example, ...] = ()
    origin: str = ""
    retrieval: DemoRetrieval | None = None

    def render(self, example: Example) -> str:
        """The instruction text the answer model sees for ``example``."""
        return self.text.replace(QUESTION_PLACEHOLDER, example.question)

    def for_example(self, example: Example, signature_of: Callable[[Example], tuple[float, ...]]) -> Prompt:
        """The prompt with concrete demos for ``example``: itself unless it retrieves demos."""
        if self.retrieval is None:
            return self
        return replace(self, demos=self.retrieval.select(example, signature_of), retrieval=None)

    def identity(self) -> dict[str, Any]:
        """What changes model output: text and demos, or the retrieval rule (origin is bookkeeping only)."""
        identity: dict[str, Any] = {
            "text": self.text,
            "demos": [dict(d.identity(), answer=d.answer) for d in self.demos],
        }
        if self.retrieval is not None:  # named only then: fixed-demo prompts keep their keys
            identity["retrieval"] = self.retrieval.identity()
        return identity


@dataclass(frozen=True)
class Pair:
    """All examples of one doc class × question type, split by image.

    Attributes:
        doc_class: Document class.
        question_type: Question type.
        train: Examples optimizers may learn from (demos, critiques).
        val: Examples optimizers select on.
        test: Held-out examples; only the run loop scores them, once, for the result.
        split_note: How the split was made when the pair was too small for the default.
    """

    doc_class: str
    question_type: str
    train: tuple[Example, ...]
    val: tuple[Example, ...]
    test: tuple[Example, ...]
    split_note: str = ""

    @property
    def key(self) -> str:
        """Display name ``"<doc type> <question type>"`` (unique within a task)."""
        return pair_key(self.doc_class, self.question_type)

    @property
    def identity(self) -> tuple[str, str]:
        """``(doc_class, question_type)``: what the pair is."""
        return (self.doc_class, self.question_type)

    @property
    def questions(self) -> tuple[str, ...]:
        """Distinct question phrasings of the non-test examples, in first-seen order."""
        return tuple(dict.fromkeys(e.question for e in self.train + self.val))


@dataclass(frozen=True)
class ExampleResult:
    """The model's answer to one example and its CER."""

    source_row: str
    answer: str
    prediction: str
    cer: float
    exact: bool


@dataclass(frozen=True)
class Score:
    """Result of scoring one prompt on a list of examples."""

    cer: float
    exact_match: float
    results: tuple[ExampleResult, ...]

    @property
    def n(self) -> int:
        return len(self.results)


@dataclass(frozen=True)
class Trial:
    """One scored candidate: what the optimizer tried and how it did.

    Attributes:
        prompt: The candidate.
        split: Split label as the evaluator gave it (see ``SPLIT_LABELS``).
        score: Its score on that split.
        step: Optimizer step (0 for the first proposals).
        optimizer: Optimizer name.
        advisor_cost_usd: Advisor cost spent to obtain this candidate (0 when none).
    """

    prompt: Prompt
    split: str
    score: Score
    step: int = 0
    optimizer: str = ""
    advisor_cost_usd: float = 0.0


# Split labels the evaluator gives a score. Only ``val`` (every validation example,
# each once) can win selection; ``val-subset`` (a minibatch or racing round), ``train``
# and ``mixed`` scores are logged with their label and never compete.
FULL_VAL = "val"
SPLIT_LABELS = ("train", FULL_VAL, "val-subset", "mixed", "test")


def baseline_prompt() -> Prompt:
    """The baseline every optimizer must beat: each example's own question."""
    return Prompt(text=QUESTION_PLACEHOLDER, origin="dataset-question")
