"""Apply a prompt book outside the framework: build the request a winner was scored with.

No Hydra, torch or litellm is imported: the book names its answer model's class and
settings, the class is built (construction is cheap by the ``AnswerModel`` contract;
weights load only on ``answer``) and its own ``messages`` builds the request. So a
deployed prompt goes through the same code that built the scored requests::

    from models.prompt_runtime import PromptRuntime

    runtime = PromptRuntime("results/<task>/Qwen2-VL-2B_sep_OptimalPrompts.book.json")
    messages = runtime.openai_messages("Паспорт", "Фамилия", "scan.jpg", "Какая фамилия?")
    # POST {"model": "Qwen/Qwen2-VL-2B-Instruct", "messages": messages, "temperature": 0,
    #       "max_tokens": 32} to a vLLM server's /v1/chat/completions

``ocr_llm`` books build the text request (the page's OCR text runs ``tesseract``); the
model shortens demo pages to its context window with its tokenizer at answer time, which
this runtime does not load: requests that fit are the same, longer ones are not cut here.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

from prompt_opt_api import AnswerModel, Example, Prompt
from prompt_opt_api.prompt_book import PromptBook, PromptBookError, file_sha256, load_book

# Only our answer models may be built from a book: a book is data, not code to run.
_ALLOWED_TARGETS = ("models.",)


class PromptRuntime:
    """A loaded prompt book and the answer models it names.

    Args:
        book: A ``PromptBook`` or the path of its JSON file.
        demo_root: The folder the demos' image paths are relative to (default: the folder of
            the task CSV the book was written from).
    """

    def __init__(self, book: PromptBook | str | Path, demo_root: str | Path | None = None) -> None:
        self.book = book if isinstance(book, PromptBook) else load_book(book)
        self.demo_root = demo_root
        self._models: dict[str, AnswerModel] = {}

    def pairs(self) -> list[tuple[str, str]]:
        """The ``(doc_class, question_type)`` pairs the book has a prompt for."""
        return self.book.pairs()

    def prompt(self, doc_class: str, question_type: str) -> Prompt:
        """The pair's prompt as scored: template and demos (images checked against their sha256)."""
        return self.book.prompt(doc_class, question_type, self.demo_root)

    def model(self, doc_class: str, question_type: str) -> AnswerModel:
        """The answer model the pair's prompt was scored with (built, not loaded)."""
        config = self.book.model_of(self.book.entry(doc_class, question_type))["config"]
        key = json.dumps(config, sort_keys=True)
        if key not in self._models:
            self._models[key] = build_from_config(config, self.book.where)
        return self._models[key]

    def example(self, doc_class: str, question_type: str, image: str | Path, question: str) -> Example:
        """A new document to ask about (no answer known)."""
        path = Path(image).expanduser().resolve()
        if not path.is_file():
            raise FileNotFoundError(f"image not found: {path}")
        return Example(image=path, question=question, answer="", doc_class=doc_class, question_type=question_type,
                       bbox=None, image_sha256=file_sha256(path), source_row=str(path))

    def messages(self, doc_class: str, question_type: str, image: str | Path, question: str) -> list[dict[str, Any]]:
        """The request the book's answer model builds for this page and question, in its own format."""
        return self.model(doc_class, question_type).messages(
            self.prompt(doc_class, question_type), self.example(doc_class, question_type, image, question))

    def openai_messages(self, doc_class: str, question_type: str, image: str | Path,
                        question: str) -> list[dict[str, Any]]:
        """OpenAI-style ``messages`` with images inline, for a vLLM server (vision answer models only)."""
        model = self.model(doc_class, question_type)
        build = getattr(model, "openai_messages", None)
        if build is None:
            raise PromptBookError(f"{self.book.where}: answer model {model.name!r} is not a vision chat model; "
                                  "use messages() for its own request format")
        return build(self.prompt(doc_class, question_type), self.example(doc_class, question_type, image, question))


def build_from_config(config: dict[str, Any], where: str = "prompt book") -> Any:
    """Build ``config`` (a ``_target_`` mapping, nested ones too) as Hydra would, without Hydra."""
    if isinstance(config, list):
        return [build_from_config(v, where) for v in config]
    if not isinstance(config, dict):
        return config
    kwargs = {k: build_from_config(v, where) for k, v in config.items() if not k.startswith("_")}
    target = config.get("_target_")
    if target is None:
        return kwargs
    if not str(target).startswith(_ALLOWED_TARGETS):
        raise PromptBookError(f"{where}: answer model target {target!r} is not one of ours (models.*)")
    module, _, name = str(target).rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as err:
        raise PromptBookError(f"{where}: cannot build the answer model {target!r} ({err})") from None
    return cls(**kwargs)
