"""``model.tesseract_lang=auto``: the OCR languages chosen from the task's train answers.

The entry point resolves ``auto`` in the configuration before anything reads it, so the
run id, the run plan, the answer model's cache identity (``TesseractOcr.identity``) and the
prompt book's model settings all carry the resolved languages, never ``auto``, and a book
applies with exactly the OCR it was scored with. A value other than ``auto`` is kept as given.

The answers looked at are those of every field on the train pages of the pairs run (a page
is train for every pair it appears in, so a field of digits on a Russian form still sees
the form's names; no val or test answer is read): ``rus+eng`` when one has a Cyrillic
letter, else ``eng``. With no train page at all, ``rus+eng`` reads both.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence
from typing import Any

from prompt_opt_api import Example, Pair

AUTO = "auto"
CYRILLIC_AND_LATIN = "rus+eng"
LATIN = "eng"
KEY = "tesseract_lang"


def has_cyrillic(text: str) -> bool:
    return any(ch.isalpha() and "CYRILLIC" in unicodedata.name(ch, "") for ch in text)


def train_answers(examples: Iterable[Example], pairs: Sequence[Pair]) -> list[str]:
    """The answers of every example (any field) on a train page of ``pairs``."""
    train_pages = {ex.image_sha256 for pair in pairs for ex in pair.train}
    return [ex.answer for ex in examples if ex.image_sha256 in train_pages]


def ocr_language(answers: Sequence[str]) -> tuple[str, str]:
    """The Tesseract languages for these train answers, and why."""
    if not answers:
        return CYRILLIC_AND_LATIN, "no train page to judge by: both scripts"
    cyrillic = sum(has_cyrillic(a) for a in answers)
    if cyrillic:
        return CYRILLIC_AND_LATIN, f"{cyrillic} of the {len(answers)} answers on the train pages have Cyrillic letters"
    return LATIN, f"none of the {len(answers)} answers on the train pages has a Cyrillic letter"


def resolve_ocr_language(cfg: Any, examples: Iterable[Example], pairs: Sequence[Pair]) -> str | None:
    """Set ``cfg.model.tesseract_lang`` from the train answers when it is ``auto``.

    Returns:
        A line for the log saying what was chosen and why; None when there was nothing to resolve.
    """
    model = cfg.get("model") if hasattr(cfg, "get") else None
    if model is None or model.get(KEY) != AUTO:
        return None
    lang, why = ocr_language(train_answers(examples, pairs))
    model[KEY] = lang
    return f"model.{KEY}=auto: {lang} ({why}); set model.{KEY} to choose"
