"""Per-document demos: for each page asked about, the k most similar pages of a train pool.

Receipts, invoices and forms repeat layouts and issuers, so the nearest train documents
are the best teachers (DSPy's ``KNNFewShot`` does the same for text). Similarity is the
cosine of two page signatures: the page in grey, shrunk to 16 x 16 pixels, centred and
scaled to unit length. It needs only the image (no OCR, no model download), so the
engine, ``optimize.apply`` and the deployment runtime compute it alike: one function,
here, for all of them.

A prompt with a ``DemoRetrieval`` is a rule, not fixed demos: the evaluator resolves it
to concrete demos per example (``Prompt.for_example``) before keying or answering, so the
cache, the answer models and the books see ordinary few-shot requests.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from prompt_opt_api.data import Example

# Bump when the signature changes: it is named in every book that holds a retrieval rule.
SIGNATURE = "page-gray16/v1"
_SIDE = 16


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


SignatureOf = Callable[[Example], tuple[float, ...]]


def signature_memo() -> SignatureOf:
    """A ``page_signature`` of examples, computed once per image sha256."""
    memo: dict[str, tuple[float, ...]] = {}

    def signature_of(example: Example) -> tuple[float, ...]:
        if example.image_sha256 not in memo:
            memo[example.image_sha256] = page_signature(example.image)
        return memo[example.image_sha256]

    return signature_of


@dataclass(frozen=True)
class DemoRetrieval:
    """Demos chosen per example: the ``k`` pool examples whose pages look most like its page.

    Attributes:
        k: Demos per request.
        pool: Train examples to choose from (the engine refuses any other split).
        signature: How pages are compared (``SIGNATURE``).
    """

    k: int
    pool: tuple[Example, ...]
    signature: str = SIGNATURE

    def select(self, example: Example, signature_of: SignatureOf) -> tuple[Example, ...]:
        """The ``k`` nearest pool examples to ``example``, nearest first (pool order breaks ties).

        A pool example on the same page (same image bytes) is never its own demo.
        """
        if self.signature != SIGNATURE:
            raise ValueError(f"demo retrieval {self.signature!r} is not supported (this version: {SIGNATURE})")
        target = signature_of(example)
        ranked = sorted(
            ((-_dot(target, signature_of(p)), i) for i, p in enumerate(self.pool)
             if p.image_sha256 != example.image_sha256),
        )
        return tuple(self.pool[i] for _, i in ranked[: self.k])

    def identity(self) -> dict[str, object]:
        """The rule as trials and books name it (the answers are keyed by the resolved demos)."""
        return {"k": self.k, "signature": self.signature,
                "pool": [dict(p.identity(), answer=p.answer) for p in self.pool]}


def _dot(a: Sequence[float], b: Sequence[float]) -> float:
    return sum(x * y for x, y in zip(a, b))
