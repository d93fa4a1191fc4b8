"""The answer-model contract: a batch of (prompt, example) in, a list of answers out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

from optimize.contracts import Example, Prompt


class AnswerModel(ABC):
    """A model that reads a document image and answers a prompt about it.

    Contract:
        * ``answer(batch)`` returns exactly one string per request, in order. An answer
          the model could not produce is ``""`` (scored as CER 1.0), never an exception,
          unless the model itself is broken (missing weights, dead server): then raise.
        * Outputs must be a pure function of (model identity, generation parameters,
          prompt text and demos, image bytes, question): the evaluator caches on exactly
          those, so nondeterministic sampling must be off (greedy / temperature 0).
        * Loading is lazy: constructing the object (Hydra does it) must be cheap and
          import nothing heavy; load weights on the first ``answer`` call.
        * Only the evaluator calls ``answer``; optimizers never do.

    Attributes:
        name: Display name, used in output file names (``<name>_sep_<advisor>.csv``).
        revision: Identity of the weights/version; part of every cache key.
    """

    name: str = "answer-model"
    revision: str = ""

    @abstractmethod
    def answer(self, batch: Sequence[tuple[Prompt, Example]]) -> list[str]:
        """Answer every request of ``batch``; one string each, same order."""

    def generation_params(self) -> dict[str, Any]:
        """Everything besides the inputs that changes the output (cache-key part)."""
        return {}

    @property
    def preferred_batch_size(self) -> int:
        """How many requests the evaluator should send per ``answer`` call."""
        return 8

    def close(self) -> None:
        """Release processes, servers or GPU memory. Idempotent."""

    def use_store(self, store: Any) -> None:
        """Give the model the run's store for derived data it caches itself (e.g. OCR).

        Default: nothing to cache.
        """
