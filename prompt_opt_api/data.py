"""Value types shared by tasks, models, optimizers and the engine.

Everything here is a frozen dataclass: optimizers return new values, nothing is
edited in place, and every value can be turned into JSON for cache keys and logs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from prompt_opt_api.answer_shape import AnswerShapes
from prompt_opt_api.demo_cut import DEMO_WINDOW
from prompt_opt_api.example import Example, pair_key

if TYPE_CHECKING:  # demo_retrieval imports example.py, never this module: no import circle
    from prompt_opt_api.demo_retrieval import DemoRetrieval, PageSignatures

QUESTION_PLACEHOLDER = "{question}"

# The largest prompt the engine scores: its text, each provenance field, the chain of parents.
# Larger ones are refused (``PromptTooLong``) before anything is charged, stored or recorded.
MAX_PROMPT_CHARS = 4000
MAX_PROVENANCE_CHARS = 200
MAX_PROVENANCE_DEPTH = 16

# How a prompt's text came about (``Provenance.kind``). The kinds in ``ADVISOR_KINDS`` are
# written by an advisor: their ``author`` must be one of the run's advisors (the engine
# checks it). ``optimizer`` is what the engine records for a prompt handed in without a
# provenance: the optimizer that scored it.
ADVISOR_KINDS = ("advisor", "critic", "textgrad", "dspy")
PROVENANCE_KINDS = ("dataset", "manual", "rule", "fewshot", "retrieval", "optimizer", *ADVISOR_KINDS)


@dataclass(frozen=True)
class Provenance:
    """Who wrote a prompt's text and how: bookkeeping only, never part of a cache key.

    Attributes:
        kind: How the text came about (``PROVENANCE_KINDS``).
        author: Who wrote the text: an advisor's name for ``ADVISOR_KINDS``, else ``dataset``,
            ``manual``, ``rule`` or the optimizer's name; a prompt derived from another
            (rule edits, added demos) keeps its parent's author.
        detail: Which step or variant, e.g. ``round2``, ``step3``, ``mipro``, ``per-pair``.
        parent: The provenance of the prompt this one was derived from (demos added to a
            critic prompt: the critic prompt's provenance).
    """

    kind: str
    author: str
    detail: str = ""
    parent: Provenance | None = None

    def derived(self, kind: str, detail: str = "") -> Provenance:
        """The provenance of a prompt made from this one by ``kind`` (the author stays)."""
        return Provenance(kind=kind, author=self.author, detail=detail, parent=self)

    @property
    def label(self) -> str:
        """The display label (results' ``origin`` column), parent first: ``dataset-question``,
        ``manual:per-pair``, ``critic:GPT4o/round2+fewshot``, ``textgrad-forward``."""
        if self.kind == "dataset" or (self.kind in ADVISOR_KINDS and self.detail == "forward"):
            own = f"{self.kind}-{self.detail}" if self.detail else self.kind  # not a candidate the author wrote
        elif self.kind in ADVISOR_KINDS or self.kind == "optimizer":
            own = f"{self.kind}:{self.author}" + (f"/{self.detail}" if self.detail else "")
        else:
            own = self.kind + (f":{self.detail}" if self.detail else "")
        return f"{self.parent.label}+{own}" if self.parent is not None else own


def derived_provenance(parent: Provenance | None, kind: str, detail: str = "") -> Provenance:
    """The provenance of a prompt made by ``kind`` from one with provenance ``parent``: the
    parent's author stays; without a parent the ``kind`` itself is named the author."""
    if parent is None:
        return Provenance(kind=kind, author=kind, detail=detail)
    return parent.derived(kind, detail)


DATASET_QUESTION = Provenance(kind="dataset", author="dataset", detail="question")
MANUAL = Provenance(kind="manual", author="manual")


@dataclass(frozen=True)
class Prompt:
    """A prompt candidate.

    ``text`` is a template: the literal ``{question}`` is replaced by each example's own
    question (so the data set's own question is the prompt ``"{question}"``); no other
    braces are interpreted, so prompts may contain JSON examples freely.

    Attributes:
        text: Prompt template.
        demos: Few-shot demonstrations (train examples with their answers).
        provenance: Who wrote it and how (``Provenance``); None: the engine records the
            optimizer that scored it as the author.
        retrieval: Demos chosen per example from a train pool (``demo_retrieval``) instead
            of fixed ``demos``; ``for_example`` resolves it.
        demo_chars: Each demo's page text cut to this many characters centred on its answer
            (``demo_cut.answer_window``; at least ``demo_cut.MIN_DEMO_CHARS``), so more demos cost
            what fewer whole pages do. Only a model that reads text cuts
            (``AnswerModel.cuts_demo_text``; the evaluator refuses it for any other). None: the
            model's own setting (``ocr_llm``'s ``demo_chars``, whole pages by default).
        answer_shapes: Each reply trimmed to the shapes of the pair's train answers and/or cut to
            the longest one's length (``answer_shape.AnswerShapes.trim``) before it is scored. Part of what the candidate
            is (a prompt with shapes and one without are two candidates), not of the request:
            both send the same request and share its cached answers. None: replies as given.
    """

    text: str
    demos: tuple[Example, ...] = ()
    provenance: Provenance | None = None
    retrieval: DemoRetrieval | None = None
    demo_chars: int | None = None
    answer_shapes: AnswerShapes | None = None

    @property
    def origin(self) -> str:
        """Display label of the provenance (``critic:GPT4o/round2+fewshot``; empty without one)."""
        return self.provenance.label if self.provenance is not None else ""

    def render(self, example: Example) -> str:
        """The instruction text the answer model sees for ``example``."""
        return self.text.replace(QUESTION_PLACEHOLDER, example.question)

    def for_example(self, example: Example, signatures: PageSignatures) -> Prompt:
        """The prompt with concrete demos for ``example`` (its demo cut kept): itself unless it retrieves demos."""
        if self.retrieval is None:
            return self
        return replace(self, demos=self.retrieval.select(example, signatures), retrieval=None)

    def identity(self) -> dict[str, Any]:
        """What changes model output (the answer key's part): text and demos, or the retrieval
        rule, and the demo cut (provenance is bookkeeping only; answer shapes trim the reply after it)."""
        identity: dict[str, Any] = {
            "text": self.text,
            "demos": [dict(d.identity(), answer=d.answer) for d in self.demos],
        }
        if self.retrieval is not None:  # named only then: fixed-demo prompts keep their keys
            identity["retrieval"] = self.retrieval.identity()
        if self.demo_chars is not None:  # named only then: prompts without a cut keep their keys
            identity["demo_cut"] = {"chars": self.demo_chars, "window": DEMO_WINDOW}
        return identity


@dataclass(frozen=True)
class Pair:
    """All examples of one doc class × question type, split by document (one split for the whole task).

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
    """The model's answer to one example and its CER.

    ``error_class``: what kind of mistake a wrong answer is (``error_classes.ERROR_CLASSES``,
    the evaluator classifies it), "" for a right one. ``prediction`` is what was scored: the
    model's reply, trimmed when the prompt has answer shapes (``Prompt.answer_shapes``), in which
    case ``raw_prediction`` is the reply as the model gave it ("" when the trim changed nothing).
    """

    source_row: str
    answer: str
    prediction: str
    cer: float
    exact: bool
    error_class: str = ""
    raw_prediction: str = ""


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
    return Prompt(text=QUESTION_PLACEHOLDER, provenance=DATASET_QUESTION)


def manual_prompts(texts: Iterable[str], detail: str = "") -> list[Prompt]:
    """Hand-written templates as candidates credited to ``manual`` (results' ``author`` column),
    not to the optimizer that scores them; ``detail`` says which list (``per-pair``)."""
    provenance = replace(MANUAL, detail=detail)
    return [Prompt(text=text, provenance=provenance) for text in texts]
