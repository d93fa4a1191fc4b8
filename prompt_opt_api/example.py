"""One labelled question about one document image, and the name of the pair it belongs to.

Its own module, imported by ``data`` (prompts, pairs, scores) and by ``demo_retrieval``
(which ``data`` names in its annotations), so that those two never import each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


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
    """A pair's display name, the results' first column: ``"<doc type> <question type>"``.

    For display and file rows only: a pair's identity is the ``(doc_class,
    question_type)`` tuple, and the task loader refuses two pairs that display alike.
    """
    return f"{doc_class} {question_type}"
