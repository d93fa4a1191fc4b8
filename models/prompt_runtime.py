"""Apply a prompt book outside the framework: build the request a winner was scored with.

No Hydra, torch or litellm is imported: the book names its answer model's class and
settings, the class is built (construction is cheap by the ``AnswerModel`` contract;
weights load only on ``answer``) and its own request code builds the request. So a
deployed prompt goes through the same code that built the scored requests::

    from models.prompt_runtime import PromptRuntime

    runtime = PromptRuntime("results/<task>/Qwen2-VL-2B_sep_OptimalPrompts.book.json")
    body = runtime.openai_request("Паспорт", "Фамилия", "scan.jpg", "Какая фамилия?")
    # POST body to a vLLM server's /v1/chat/completions, then
    value = runtime.answer("Паспорт", "Фамилия", reply_text)

``answer`` turns the model's reply into the answer the book's CER was measured on: the reply
stripped, trimmed to the pair's train-answer shapes and cut to its longest train answer's
length when its entry has them (``BookEntry.answer_shapes``, ``BookEntry.answer_max_chars``,
``prompt_opt_api.answer_shape.AnswerShapes.trim``), as the
evaluator scored it. ``messages`` gives the book's model's own request format (``ocr_llm``: its text request,
the page read by ``tesseract`` and fitted to the context with the model's tokenizer, as
at answer time).

A book is data (``prompt_opt_api.book_trust``): the model is one the project's config
registers, built with that config's settings for where it runs and where its weights come
from (``model_settings`` over them), never the book's; a book whose content does not match
its hash is refused unless ``trust``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from prompt_opt_api import AnswerModel, Example, Prompt, reads_text
from prompt_opt_api.demo_retrieval import PageSignatures
from prompt_opt_api.book_trust import (ANSWER_MODEL, UserChoices, build, check_content, check_demo_cut,
                                       component_config)
from prompt_opt_api.prompt_book import PromptBook, entry_trim, file_sha256, load_book

log = logging.getLogger(__name__)


class PromptRuntime:
    """A loaded prompt book and the answer models it names.

    Args:
        book: A ``PromptBook`` or the path of its JSON file.
        demo_root: The folder the demos' image paths are relative to (default: the folder of
            the task CSV the book was written from); demo images are read only inside it.
        model_settings: Your settings of the answer model over the book's and the config's
            (``{"api_base": ..., "store_dir": ...}``, nested for nested ones).
        allow: Module prefixes whose answer-model classes a book may name besides the
            registered ones (a book is data: nothing else is built from it).
        trust: Use a book whose content does not match its ``content_sha256``, or that has none.

    Raises:
        PromptBookError: the book is not as written and ``trust`` is false.
    """

    def __init__(self, book: PromptBook | str | Path, demo_root: str | Path | None = None,
                 model_settings: dict[str, Any] | None = None, allow: tuple[str, ...] = (),
                 trust: bool = False) -> None:
        if not isinstance(trust, bool):
            raise TypeError("PromptRuntime: trust is true or false; module prefixes of your own models go to allow=")
        self.book = book if isinstance(book, PromptBook) else load_book(book)
        if (problem := check_content(self.book, trust)) is not None:
            log.warning("%s (used: trust=True)", problem)
        self.demo_root = demo_root
        self.user = UserChoices(model=dict(model_settings or {}), allow=tuple(allow), trust=trust)
        self._models: dict[str, AnswerModel] = {}
        self._prompts: dict[tuple[str, str], Prompt] = {}
        self._signatures: dict[tuple[str, str], PageSignatures] = {}  # per pair's model, for per-document demos

    def pairs(self) -> list[tuple[str, str]]:
        """The ``(doc_class, question_type)`` pairs the book has a prompt for."""
        return self.book.pairs()

    def prompt(self, doc_class: str, question_type: str) -> Prompt:
        """The pair's prompt as scored: template and demos (images checked against their sha256 once)."""
        key = (doc_class, question_type)
        if key not in self._prompts:
            self._prompts[key] = self.book.prompt(doc_class, question_type, self.demo_root)
        return self._prompts[key]

    def prompt_for(self, example: Example) -> Prompt:
        """The prompt with the demos this example gets (per-document demos resolved as the engine does)."""
        key = (example.doc_class, example.question_type)
        if key not in self._signatures:  # the model is built only if a rule compares page text
            self._signatures[key] = PageSignatures(lambda page: self._page_text(key, page))
        return self.prompt(*key).for_example(example, self._signatures[key])

    def _page_text(self, key: tuple[str, str], example: Example) -> str | None:
        model = self.model(*key)
        return model.page_text(example) if reads_text(model) else None

    def model(self, doc_class: str, question_type: str) -> AnswerModel:
        """The answer model the pair's prompt was scored with (built, not loaded).

        Raises:
            PromptBookError: the pair's prompt cuts its demo pages (``demo_chars``) and the model
                does not cut them (``prompt_opt_api.book_trust.check_demo_cut``).
        """
        entry = self.book.entry(doc_class, question_type)
        info = self.book.model_of(entry)
        where = f"pair {entry.key!r} answer_model.config" if entry.answer_model else "answer_model.config"
        config = component_config(info["config"], ANSWER_MODEL, self.user, self.book.where, where,
                                  overrides=self.user.model, legacy=self.book.schema_version < 4)
        check_demo_cut(self.book, entry, config, self.user)  # a model that reads pixels would drop the cut
        key = json.dumps(config, sort_keys=True)
        if key not in self._models:
            model = build(config, ANSWER_MODEL, self.user, f"{self.book.where}, answer model")
            if _as_json(model.cache_identity()) != info.get("identity"):
                log.warning("answer model %r here is not the one the book was scored with (another version of a "
                            "library, OCR engine or weights): its requests or answers may differ", model.name)
            self._models[key] = model
        return self._models[key]

    def answer(self, doc_class: str, question_type: str, reply: str) -> str:
        """The pair's answer from the model's ``reply``: stripped, and trimmed to the pair's train-answer
        shapes and cut to its length when its entry has them (``BookEntry.answer_shapes``,
        ``BookEntry.answer_max_chars``), as the evaluator scored it.

        Raises:
            PromptBookError: the pair is not in the book.
        """
        trim = entry_trim(self.book.entry(doc_class, question_type))
        reply = reply.strip()
        return trim.trim(reply) if trim is not None else reply

    def example(self, doc_class: str, question_type: str, image: str | Path, question: str) -> Example:
        """A new document to ask about (no answer known)."""
        path = Path(image).expanduser().resolve()
        if not path.is_file():
            raise FileNotFoundError(f"image not found: {path}")
        return Example(image=path, question=question, answer="", doc_class=doc_class, question_type=question_type,
                       bbox=None, image_sha256=file_sha256(path), source_row=str(path))

    def messages(self, doc_class: str, question_type: str, image: str | Path, question: str) -> list[dict[str, Any]]:
        """The request the book's answer model builds for this page and question, in its own format."""
        example = self.example(doc_class, question_type, image, question)
        return self.model(doc_class, question_type).messages(self.prompt_for(example), example)

    def openai_request(self, doc_class: str, question_type: str, image: str | Path, question: str) -> dict[str, Any]:
        """The OpenAI-style chat request body (model, messages with images inline, temperature,
        max_tokens, and a vLLM server's image settings where the model has them)."""
        example = self.example(doc_class, question_type, image, question)
        return self.model(doc_class, question_type).openai_request(self.prompt_for(example), example)


def _as_json(value: Any) -> Any:
    return json.loads(json.dumps(value))
