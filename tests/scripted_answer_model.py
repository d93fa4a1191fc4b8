"""A scripted stand-in answer model for the engine's unit tests (never a conf/ default).

Its answer quality depends on the prompt text in a known way, so tests can check that
the engine picks the better prompt; every real request is logged to a file, so tests
can count model calls across processes (also across a SIGKILL).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

from prompt_opt_api import AnswerModel, TaskError
from prompt_opt_api import Example, Prompt
from prompt_opt_api.demo_cut import answer_window


# look-alike letters, each to the other script
_LATIN, _CYRILLIC = "ABCEHKMOPTXYaceopxy", "АВСЕНКМОРТХУасеорху"
_OTHER_SCRIPT = str.maketrans(_LATIN + _CYRILLIC, _CYRILLIC + _LATIN)


class ScriptedAnswerModel(AnswerModel):
    """Answers by rule: a prompt containing ``exact_marker`` gets the true answer, one
    containing ``{question}``-only gets the answer one character short, anything else
    gets a wrong answer.

    Args:
        calls_log: File to append one line per real request (None: no log).
        delay_s: Sleep per batch, to let tests kill a run mid-way.
        batch_size: Preferred batch size.
        exact_marker: Substring that makes answers exact.
        fail_pair: ``"<doc_class> <question_type>"`` whose requests raise RuntimeError...
        fail_flag: ...while this file exists (None: always).
        demos_exact: A prompt with demos gets the true answer when its first demo's answer has
            an even number of characters, else one character short (few-shot winners for
            tests, whose answers show which demos came first).
        echo_first_demo: A prompt with demos gets its first demo's answer (which demos were
            chosen shows in the answer).
        wrong_script: Every answer comes with its look-alike letters in the other script
            (Latin ``A`` as Cyrillic ``А`` and the reverse), as OCR of the wrong language reads them.
    """

    name = "Scripted-VLM"
    revision = "rules-v1"

    def __init__(self, calls_log: str | None = None, delay_s: float = 0.0, batch_size: int = 4,
                 exact_marker: str = "только значением", fail_pair: str | None = None,
                 fail_flag: str | None = None, demos_exact: bool = False, echo_first_demo: bool = False,
                 wrong_script: bool = False) -> None:
        self.calls_log = calls_log
        self.delay_s = delay_s
        self._batch_size = batch_size
        self.exact_marker = exact_marker
        self.fail_pair = fail_pair
        self.fail_flag = fail_flag
        self.demos_exact = demos_exact
        self.echo_first_demo = echo_first_demo
        self.wrong_script = wrong_script
        self.calls = 0
        self.batches: list[int] = []

    @property
    def preferred_batch_size(self) -> int:
        return self._batch_size

    def generation_params(self) -> dict:
        return {"exact_marker": self.exact_marker, **({"demos_exact": True} if self.demos_exact else {}),
                **({"echo_first_demo": True} if self.echo_first_demo else {}),
                **({"wrong_script": True} if self.wrong_script else {})}

    def _one(self, prompt: Prompt, example: Example) -> str:
        text = prompt.render(example)
        if self.echo_first_demo and prompt.demos:
            return prompt.demos[0].answer
        if self.demos_exact and prompt.demos:
            return example.answer[: len(example.answer) - len(prompt.demos[0].answer) % 2]
        if self.exact_marker in text:
            return example.answer
        if prompt.text == "{question}":
            return example.answer[:-1]  # one character short
        return "не знаю"

    def answer(self, batch: Sequence[tuple[Prompt, Example]]) -> list[str]:
        if self.delay_s:
            time.sleep(self.delay_s)
        if self.fail_pair and any(e.pair_key == self.fail_pair for _, e in batch):
            if self.fail_flag is None or os.path.exists(self.fail_flag):
                raise RuntimeError(f"scripted failure on {self.fail_pair}")
        outputs = [self._one(p, e) for p, e in batch]
        if self.wrong_script:
            outputs = [out.translate(_OTHER_SCRIPT) for out in outputs]
        self.calls += len(batch)
        self.batches.append(len(batch))
        if self.calls_log:
            with open(self.calls_log, "a", encoding="utf-8") as fh:
                fh.write("".join(f"{e.image_sha256[:12]} {p.text[:20]!r}\n" for p, e in batch))
                fh.flush()
                os.fsync(fh.fileno())
        return outputs


class ScriptedReader(ScriptedAnswerModel):
    """A scripted model that reads text: a page's text is the ``<image>.txt`` file beside it
    (a stand-in for OCR, so tests of retrieval by page text control what is similar)."""

    name = "Scripted-Reader"

    def page_text(self, example: Example) -> str:
        return example.image.with_suffix(".txt").read_text(encoding="utf-8")


class ScriptedOcr(ScriptedAnswerModel):
    """A scripted model with ``ocr_llm``'s OCR-language setting: ``auto`` is resolved by the entry
    point before the model is built, and the languages are part of its cache identity (a model
    still holding ``auto`` refuses to state one, as ``ocr_llm``'s Tesseract does)."""

    name = "Scripted-OCR"

    def __init__(self, tesseract_lang: str = "rus+eng", **settings) -> None:
        super().__init__(**settings)
        self.tesseract_lang = tesseract_lang

    def cache_identity(self) -> dict:
        if self.tesseract_lang == "auto":
            raise TaskError("tesseract_lang=auto reached the model unresolved")
        return {**super().cache_identity(), "ocr": {"lang": self.tesseract_lang}}


class ScriptedCutReader(ScriptedReader):
    """A scripted reader that reads its demos' pages within ``context_chars`` characters, as
    ``ocr_llm`` fits a request: each demo page whole, or cut around its answer when the prompt
    says (``Prompt.demo_chars``, by ``prompt_opt_api.demo_cut.answer_window``, the window every
    model that cuts uses); demos past the context are dropped from the last. With demos it answers
    right when it read ``needs_demos`` of them (and, with ``cut_hurts``, none of them cut), else
    one character short; without demos as ``ScriptedAnswerModel`` does.
    """

    name = "Scripted-Cut-Reader"
    cuts_demo_text = True

    def __init__(self, context_chars: int = 1500, needs_demos: int = 4, cut_hurts: bool = False, **settings) -> None:
        super().__init__(**settings)
        self.context_chars, self.needs_demos, self.cut_hurts = context_chars, needs_demos, cut_hurts
        self.cuts_seen: set[int | None] = set()  # the demo cuts of the requests it answered

    def generation_params(self) -> dict:
        return {**super().generation_params(), "context_chars": self.context_chars, "needs_demos": self.needs_demos,
                **({"cut_hurts": True} if self.cut_hurts else {})}

    def demo_texts(self, prompt: Prompt) -> list[str]:
        """The demo page texts the request holds: cut when the prompt says, as many as fit the context."""
        texts: list[str] = []
        for demo in prompt.demos:
            page = self.page_text(demo)
            text = answer_window(page, demo.answer, prompt.demo_chars) if prompt.demo_chars else page
            if sum(map(len, texts)) + len(text) > self.context_chars:
                break
            texts.append(text)
        return texts

    def _one(self, prompt: Prompt, example: Example) -> str:
        if not prompt.demos:
            return super()._one(prompt, example)
        self.cuts_seen.add(prompt.demo_chars)
        read = self.demo_texts(prompt)
        cut = any(len(text) < len(self.page_text(demo)) for text, demo in zip(read, prompt.demos))
        if len(read) >= self.needs_demos and not (self.cut_hurts and cut):
            return example.answer
        return example.answer[:-1]


class ScriptedSuffixModel(ScriptedAnswerModel):
    """A scripted model that reads pixels and writes the value plus more: every answer as
    ``ScriptedAnswerModel`` gives it, then ``suffix`` (a time after a date, as a small reader
    does); an empty ``suffix`` answers as ``ScriptedAnswerModel``."""

    name = "Scripted-Suffix"

    def __init__(self, suffix: str = " 20:13:39", **settings) -> None:
        super().__init__(**settings)
        self.suffix = suffix

    def generation_params(self) -> dict:
        return {**super().generation_params(), "suffix": self.suffix}

    def _one(self, prompt: Prompt, example: Example) -> str:
        return super()._one(prompt, example) + self.suffix
