"""Per-document demos: for each page asked about, the k most similar pages of a train pool.

Receipts, invoices and forms repeat layouts and issuers, so the nearest train documents
are the best teachers (DSPy's ``KNNFewShot`` does the same for text). Two ways to compare
pages, each named in every book that holds a rule:

* ``page-gray16/v1``: the page in grey, shrunk to 16 x 16 pixels, mean removed, unit
  length. Needs only the image, so it works with every answer model.
* ``ocr-char3-tfidf/v1``: the page's text as the answer model reads it (its OCR), as
  character 3-grams weighted by sublinear TF x IDF over the pool. Compares issuers and
  wording rather than layout; available only when the model reads text
  (``AnswerModel.page_text``), and the runtime uses the same model, so it retrieves alike.

A prompt with a ``DemoRetrieval`` is a rule, not fixed demos: the evaluator resolves it
to concrete demos per example (``Prompt.for_example``) before keying or answering, so the
cache, the answer models and the books see ordinary few-shot requests. One function,
here, does it for the engine, ``optimize.apply`` and the deployment runtime.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from prompt_opt_api.example import Example

PAGE_GRAY16 = "page-gray16/v1"
OCR_TFIDF = "ocr-char3-tfidf/v1"
SIGNATURES = (PAGE_GRAY16, OCR_TFIDF)
SIGNATURE = PAGE_GRAY16  # the default: needs nothing but the image
_SIDE = 16
_NGRAM = 3

PageText = Callable[[Example], "str | None"]


def page_signature(image: Path) -> tuple[float, ...]:
    """The page as a unit vector of 16 x 16 grey levels, mean removed (layout, not ink)."""
    from PIL import Image  # lazy: the contracts import nothing heavy at module level

    with Image.open(image) as img:
        small = img.convert("L").resize((_SIDE, _SIDE), Image.Resampling.BOX)
        values = [float(v) for v in small.tobytes()]  # mode L: one byte a pixel
    centre = sum(values) / len(values)
    values = [v - centre for v in values]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return tuple(v / norm for v in values)


def char_ngrams(text: str) -> Counter[str]:
    """Character 3-grams of ``text``, case-folded, runs of white space as one space."""
    flat = " " + re.sub(r"\s+", " ", text.casefold()).strip() + " "
    return Counter(flat[i : i + _NGRAM] for i in range(len(flat) - _NGRAM + 1))


class PageSignatures:
    """Page vectors for retrieval, computed once per image (and pool, for TF-IDF weights).

    Args:
        page_text: The page's text as the answer model reads it (``AnswerModel.page_text``);
            None, or a function returning None: the model reads pixels only, and a rule
            comparing OCR text is refused.
    """

    def __init__(self, page_text: PageText | None = None) -> None:
        self._page_text = page_text
        self._gray: dict[str, tuple[float, ...]] = {}
        self._grams: dict[str, Counter[str]] = {}
        self._idf: dict[tuple[str, ...], dict[str, float]] = {}
        self._weighted: dict[tuple[str, tuple[str, ...]], dict[str, float]] = {}

    def available(self) -> tuple[str, ...]:
        """The signatures this model supports (OCR text only when ``page_text`` gives text)."""
        return SIGNATURES if self._page_text is not None else (PAGE_GRAY16,)

    def gray(self, example: Example) -> tuple[float, ...]:
        if example.image_sha256 not in self._gray:
            self._gray[example.image_sha256] = page_signature(example.image)
        return self._gray[example.image_sha256]

    def grams(self, example: Example) -> Counter[str]:
        if example.image_sha256 not in self._grams:
            text = self._page_text(example) if self._page_text is not None else None
            if text is None:
                raise ValueError(f"demo retrieval {OCR_TFIDF!r} needs an answer model that reads the page's "
                                 f"text (AnswerModel.page_text); this one reads pixels only: use {PAGE_GRAY16!r}")
            self._grams[example.image_sha256] = char_ngrams(text)
        return self._grams[example.image_sha256]

    def tfidf(self, example: Example, pool: tuple[Example, ...]) -> dict[str, float]:
        """The page's 3-grams, weighted (1 + log tf) x smoothed IDF over ``pool``, unit length."""
        key = tuple(sorted({p.image_sha256 for p in pool}))
        if (example.image_sha256, key) in self._weighted:
            return self._weighted[example.image_sha256, key]
        if key not in self._idf:
            pages = {p.image_sha256: p for p in pool}
            df = Counter(g for p in pages.values() for g in self.grams(p))
            self._idf[key] = {g: math.log((1 + len(pages)) / (1 + n)) + 1 for g, n in df.items()}
        idf = self._idf[key]
        unseen = math.log(1 + len(key)) + 1  # a 3-gram no pool page has
        weights = {g: (1 + math.log(n)) * idf.get(g, unseen) for g, n in self.grams(example).items()}
        norm = math.sqrt(sum(w * w for w in weights.values())) or 1.0
        self._weighted[example.image_sha256, key] = {g: w / norm for g, w in weights.items()}
        return self._weighted[example.image_sha256, key]


@dataclass(frozen=True)
class DemoRetrieval:
    """Demos chosen per example: the ``k`` pool examples whose pages are most like its page.

    Attributes:
        k: Demos per request.
        pool: Train examples to choose from (the engine refuses any other split).
        signature: How pages are compared (one of ``SIGNATURES``).
        distinct_answers: Skip a candidate whose answer a nearer chosen demo already has,
            so k demos show k different values (one issuer's receipts otherwise teach one
            answer k times).
    """

    k: int
    pool: tuple[Example, ...]
    signature: str = SIGNATURE
    distinct_answers: bool = False

    def select(self, example: Example, signatures: PageSignatures) -> tuple[Example, ...]:
        """The ``k`` nearest pool examples to ``example``, nearest first (pool order breaks ties).

        A pool example on the same page (same image bytes) is never its own demo.
        """
        if self.signature not in SIGNATURES:
            raise ValueError(f"demo retrieval {self.signature!r} is not supported (this version: {list(SIGNATURES)})")
        ranked = sorted((-similarity, i) for i, similarity in self._similarities(example, signatures))
        chosen: list[Example] = []
        for _, i in ranked:
            candidate = self.pool[i]
            if self.distinct_answers and any(c.answer.casefold() == candidate.answer.casefold() for c in chosen):
                continue
            chosen.append(candidate)
            if len(chosen) == self.k:
                break
        return tuple(chosen)

    def _similarities(self, example: Example, signatures: PageSignatures) -> list[tuple[int, float]]:
        others = [(i, p) for i, p in enumerate(self.pool) if p.image_sha256 != example.image_sha256]
        if self.signature == PAGE_GRAY16:
            target = signatures.gray(example)
            return [(i, _dot(target, signatures.gray(p))) for i, p in others]
        target_text = signatures.tfidf(example, self.pool)
        return [(i, _sparse_dot(target_text, signatures.tfidf(p, self.pool))) for i, p in others]

    def identity(self) -> dict[str, object]:
        """The rule as trials and books name it (the answers are keyed by the resolved demos)."""
        identity: dict[str, object] = {"k": self.k, "signature": self.signature,
                                       "pool": [dict(p.identity(), answer=p.answer) for p in self.pool]}
        if self.distinct_answers:  # named only then: earlier rules keep their identity
            identity["distinct_answers"] = True
        return identity


def _dot(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    return sum(x * y for x, y in zip(a, b))


def _sparse_dot(a: Mapping[str, float], b: Mapping[str, float]) -> float:
    small, large = (a, b) if len(a) <= len(b) else (b, a)
    return sum(w * large.get(g, 0.0) for g, w in small.items())
