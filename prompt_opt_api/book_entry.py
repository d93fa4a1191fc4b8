"""One pair's entry of a prompt book: its dataclasses and how an entry is read and checked.

The book around the entries (header, schema versions, content hash, reading a file) is
``prompt_opt_api.prompt_book``, which re-exports these names.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from prompt_opt_api.answer_shape import max_chars_problem, shapes_note, shapes_problem
from prompt_opt_api.data import pair_key
from prompt_opt_api.demo_cut import demo_chars_problem
from prompt_opt_api.errors import TaskError


class PromptBookError(TaskError):
    """A prompt book is unusable: wrong schema, a demo image missing or changed, a pair not in it."""


@dataclass(frozen=True)
class BookDemo:
    """One few-shot demonstration as it was scored.

    Attributes:
        image: Path of the demo's image relative to the task CSV's folder (POSIX form).
        image_sha256: sha256 of the image bytes when it was scored.
        question: The demo's own question (the template is rendered with it).
        answer: The demo's answer (the assistant turn).
    """

    image: str
    image_sha256: str
    question: str
    answer: str


@dataclass(frozen=True)
class BookRetrieval:
    """Demos chosen per document (``prompt_opt_api.demo_retrieval``): the rule and its pool.

    Attributes:
        k: Demos per request.
        signature: How pages are compared.
        pool: The train examples demos are chosen from.
        distinct_answers: Demos with k different answers (``DemoRetrieval``).
    """

    k: int
    signature: str
    pool: tuple[BookDemo, ...]
    distinct_answers: bool = False


@dataclass(frozen=True)
class BookEntry:
    """One pair's winner.

    Attributes:
        doc_class: Document class.
        question_type: Question type.
        template: Prompt template (``{question}`` is replaced by each example's question).
        demos: Demonstrations, in the order they were scored.
        val_cer: CER on the full val split (what chose it).
        test_cer: Held-out test CER as reported.
        test_ci: Bootstrap 95 % interval of the test CER, ``[low, high]``.
        n_val: Val examples.
        n_test: Test examples.
        advisor: Advisor of the run that found it (``none`` without one).
        optimizer: Optimizer of that run.
        author: Who wrote the text.
        origin: How it was made.
        run_id: The run.
        answer_model: The answer model, only where it differs from the book's.
        retrieval: Demos chosen per document from a pool, instead of fixed ``demos``.
        demo_chars: Each demo's page text cut to this many characters around its answer
            (``Prompt.demo_chars``); None: as the answer model's settings say.
        answer_shapes: The shapes of the pair's train answers each reply is trimmed to before it is
            scored (``Prompt.answer_shapes``); None: no shape trim.
        answer_max_chars: Each reply, after the shape trim, cut to this many characters: the longest
            train answer's length (``AnswerShapes.max_chars``); None: no length cut.
    """

    doc_class: str
    question_type: str
    template: str
    demos: tuple[BookDemo, ...] = ()
    val_cer: float | None = None
    test_cer: float | None = None
    test_ci: tuple[float | None, float | None] = (None, None)
    n_val: int = 0
    n_test: int = 0
    advisor: str = ""
    optimizer: str = ""
    author: str = ""
    origin: str = ""
    run_id: str = ""
    answer_model: dict[str, Any] | None = None
    retrieval: BookRetrieval | None = None
    demo_chars: int | None = None
    answer_shapes: tuple[str, ...] | None = None
    answer_max_chars: int | None = None

    @property
    def key(self) -> str:
        return pair_key(self.doc_class, self.question_type)

    def demos_text(self) -> str:
        """The demos as a person reads them: ``images/x.jpg: "ИВАНОВ"; images/y.jpg: "ПЕТРОВ"``, and
        the answer shapes replies are trimmed to, when there are."""
        if self.retrieval is not None:
            rule = self.retrieval
            text = retrieval_text(rule.k, len(rule.pool), rule.signature, rule.distinct_answers, self.demo_chars)
        else:
            listed = "; ".join(f"{d.image}: {json.dumps(d.answer, ensure_ascii=False)}" for d in self.demos)
            notes = demo_notes(demo_chars=self.demo_chars)
            text = listed + (f" ({', '.join(notes)})" if notes and listed else "")
        if self.answer_shapes is None and self.answer_max_chars is None:
            return text
        return "; ".join(filter(None, [text, shapes_note(len(self.answer_shapes or ()), self.answer_max_chars)]))


def retrieval_text(k: int, pool: int, signature: str, distinct_answers: bool, demo_chars: int | None) -> str:
    """A retrieval rule as a person reads it (``BookEntry.demos_text``)."""
    notes = ", ".join([signature, *demo_notes(distinct_answers, demo_chars)])
    return f"per document: the {k} most similar of {pool} train pages ({notes})"


def demo_notes(distinct_answers: bool = False, demo_chars: int | None = None) -> list[str]:
    """What demos have besides their pages and answers, in words: distinct answers, the demo cut."""
    return ((["distinct answers"] if distinct_answers else [])
            + ([f"each page cut to {demo_chars} characters around its answer"] if demo_chars else []))


def check_model(model: Any, where: str) -> None:
    if not isinstance(model, dict) or not isinstance(model.get("config"), dict):
        raise PromptBookError(f"{where}: \"answer_model\" must hold the model's name, identity and config")


def entry_from_json(item: Any, where: str) -> BookEntry:
    """An entry from its JSON form, validated; ``where`` names it in errors."""
    try:
        return _entry_from_json(item, where)
    except (TypeError, ValueError, KeyError) as err:
        if isinstance(err, PromptBookError):
            raise
        raise PromptBookError(f"{where}: malformed entry ({type(err).__name__}: {err})") from None


def _entry_from_json(item: Any, where: str) -> BookEntry:
    if not isinstance(item, dict):
        raise PromptBookError(f"{where}: an entry must be an object")
    for key in ("doc_class", "question_type", "template"):
        if not isinstance(item.get(key), str):
            raise PromptBookError(f"{where}: {key!r} must be a string")
    where = f"{where} ({pair_key(item['doc_class'], item['question_type'])!r})"
    demos = _demos_from_json(item.get("demos") or [], f"{where}, demo")
    retrieval = None
    if item.get("retrieval") is not None:
        rule = item["retrieval"]
        if not isinstance(rule, dict) or type(rule.get("k")) is not int or not isinstance(rule.get("signature"), str):
            raise PromptBookError(f"{where}: \"retrieval\" needs an integer k, a signature and a pool")
        if type(rule.get("distinct_answers", False)) is not bool:
            raise PromptBookError(f"{where}: \"retrieval\".distinct_answers must be true or false")
        retrieval = BookRetrieval(rule["k"], rule["signature"],
                                  _demos_from_json(rule.get("pool") or [], f"{where}, retrieval pool example"),
                                  rule.get("distinct_answers", False))
    ci = item.get("test_ci") or [None, None]
    for key in ("val_cer", "test_cer"):
        if item.get(key) is not None and not isinstance(item[key], (int, float)):
            raise PromptBookError(f"{where}: {key!r} must be a number or null")
    if item.get("answer_model") is not None:
        check_model(item["answer_model"], where)
    if (problem := demo_chars_problem(item.get("demo_chars"))) is not None:
        raise PromptBookError(f"{where}: \"demo_chars\" {problem}")
    shapes = item.get("answer_shapes")
    if shapes is not None and (problem := shapes_problem(shapes)) is not None:
        raise PromptBookError(f"{where}: \"answer_shapes\" {problem}")
    max_chars = item.get("answer_max_chars")
    if max_chars is not None and (problem := max_chars_problem(max_chars)) is not None:
        raise PromptBookError(f"{where}: \"answer_max_chars\" {problem}")
    return BookEntry(
        doc_class=item["doc_class"], question_type=item["question_type"], template=item["template"],
        demos=tuple(demos), val_cer=item.get("val_cer"), test_cer=item.get("test_cer"),
        test_ci=(ci[0], ci[1]) if isinstance(ci, list) and len(ci) == 2 else (None, None),
        n_val=int(item.get("n_val") or 0),
        n_test=int(item.get("n_test") or 0), advisor=str(item.get("advisor", "")),
        optimizer=str(item.get("optimizer", "")), author=str(item.get("author", "")),
        origin=str(item.get("origin", "")), run_id=str(item.get("run_id", "")),
        answer_model=item.get("answer_model"), retrieval=retrieval, demo_chars=item.get("demo_chars"),
        answer_shapes=tuple(shapes) if shapes is not None else None, answer_max_chars=max_chars,
    )


def _demos_from_json(items: list[Any], where: str) -> tuple[BookDemo, ...]:
    demos = []
    for i, demo in enumerate(items):
        if not isinstance(demo, dict) or not all(isinstance(demo.get(k), str) for k in
                                                 ("image", "image_sha256", "question", "answer")):
            raise PromptBookError(f"{where} {i + 1}: needs string fields image, image_sha256, question, answer")
        demos.append(BookDemo(demo["image"], demo["image_sha256"], demo["question"], demo["answer"]))
    return tuple(demos)
