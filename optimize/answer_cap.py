"""``fit_answer_cap=true``: the answer model's length cap raised to fit the task's train answers.

A model writes at most ``model.max_tokens`` (``ocr_llm``, ``openai_vlm``) or
``model.max_new_tokens`` (``qwen2_vl``) tokens, 32 by default: enough for a date or a
passport number, not for a receipt's address (up to 111 characters in SROIE), which a cap
of 32 cuts mid-word on every page, whatever the prompt. So the entry point raises the cap
to the longest train answer of the pairs run, in characters, plus ``SPARE_TOKENS``: a
token of these tokenizers holds at least one character of the scripts the data sets use
(Latin, Cyrillic, digits, punctuation: at most 1.0 token a character on the SROIE and demo
answers with the Qwen2.5 tokenizer, scripts/answer_tokens.py). A raise stops at
``MAX_FITTED_CAP`` and at a quarter of the model's ``n_ctx``; the cap is never lowered, and
only train answers are read (no val or test answer). The cap is one for the run, so it
depends on the pairs run: a date field run alone keeps 32, run beside an address it gets
the address's cap (other cache keys, the same answers unless a reply runs past 32 tokens). It is resolved in the
configuration before anything reads it, like ``model.tesseract_lang=auto``
(``optimize.ocr_language``): the run id, the run plan, the answer model's cache identity
and the prompt book carry the resolved number, so a book applies with the cap it was
scored with. ``fit_answer_cap=false`` keeps the configured cap.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from prompt_opt_api import Pair

CAP_KEYS = ("max_tokens", "max_new_tokens")  # the answer-length cap, by the name each model gives it
SPARE_TOKENS = 8  # room for an answer a little longer than any seen in train
MAX_FITTED_CAP = 256  # a raise stops here: a longer answer is no field value, and the page needs the context


def cap_key(model: Any) -> str | None:
    """The model setting that caps its answer length; None for a model without one (or none a whole
    number: null, or ``true``, which is no number of tokens)."""
    return next((key for key in CAP_KEYS if type(model.get(key)) is int), None)


def fitted_cap(configured: int, pairs: Sequence[Pair], n_ctx: Any = None) -> tuple[int, int]:
    """The cap fitting the pairs' train answers, and the longest train answer's length in
    characters (0 with no train example). Never below ``configured``; a raise stops at
    ``MAX_FITTED_CAP`` and at a quarter of the model's context ``n_ctx`` (when it has one), so
    the page keeps most of the context."""
    longest = max((len(ex.answer) for pair in pairs for ex in pair.train), default=0)
    limit = min(MAX_FITTED_CAP, n_ctx // 4) if type(n_ctx) is int else MAX_FITTED_CAP
    return max(configured, min(longest + SPARE_TOKENS, limit)), longest


def resolve_answer_cap(cfg: Any, pairs: Sequence[Pair]) -> str | None:
    """Raise ``cfg.model``'s answer cap to fit the train answers when ``cfg.fit_answer_cap``.

    Returns:
        A line for the log saying what was raised and why; None when the cap stays as configured.
    """
    model = cfg.get("model") if hasattr(cfg, "get") else None
    key = cap_key(model) if model is not None and cfg.get("fit_answer_cap") else None
    if key is None:
        return None
    configured = int(model[key])
    cap, longest = fitted_cap(configured, pairs, model.get("n_ctx"))
    if cap == configured:
        return None
    model[key] = cap
    return (f"model.{key}={cap} (configured {configured}): the longest train answer of the pairs run has {longest} "
            f"characters; fit_answer_cap=false keeps the configured cap")
