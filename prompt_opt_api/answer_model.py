"""The answer-model contract: a batch of (prompt, example) in, a list of answers out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

from prompt_opt_api.cache import DerivedDataCache
from prompt_opt_api.data import Example, Prompt


class AnswerModel(ABC):
    """A model that reads a document image and answers a prompt about it.

    Contract:
        * ``answer(batch)`` returns exactly one string per request, in order. An answer
          the model could not produce is ``""`` (scored as CER 1.0), never an exception,
          unless the model itself is broken: then raise (``EndpointUnreachable`` when a
          server cannot be reached at all, anything else fails the current pair only).
        * Outputs must be a pure function of ``cache_identity()`` and the request
          (prompt text and demos, image bytes, question): the evaluator caches on exactly
          those, so sampling must be off (greedy / temperature 0), and answers must not
          depend on batching, request order or internal prefix reuse.
        * ``cache_identity()`` names everything besides the request that changes an
          answer: weights revision (a fixed one, never a moving branch), library
          versions, dtype and device type, pre-processing (OCR engine and settings),
          generation parameters.
        * Loading is lazy: constructing the object (Hydra does it) must be cheap and
          import nothing heavy; load weights on the first ``answer`` call.
        * Only the engine's evaluator calls ``answer``; optimizers never see the model.

    Attributes:
        name: Display name, used in output file names (``<name>_sep_<advisor>.csv``).
        revision: Identity of the weights; part of every cache key.
        assumed_seconds_per_query: The run plan's guess of a query's cost before the store
            has measured one (``plan=true`` on a fresh machine); None: no guess.
        cuts_demo_text: Whether the model honours ``Prompt.demo_chars`` (cuts each demo's page
            text around its answer, ``prompt_opt_api.demo_cut``). A model that reads pixels
            cannot: the evaluator refuses a cut prompt for it, and the optimizers see the flag
            (``PromptEvaluator.cuts_demo_text``) and propose none.
    """

    name: str = "answer-model"
    revision: str = ""
    assumed_seconds_per_query: float | None = None
    cuts_demo_text: bool = False

    @abstractmethod
    def answer(self, batch: Sequence[tuple[Prompt, Example]]) -> list[str]:
        """Answer every request of ``batch``; one string each, same order."""

    def messages(self, prompt: Prompt, example: Example) -> list[dict[str, Any]]:
        """The chat request ``answer`` builds for one (prompt, example), in the model's own format.

        The one place a model builds its requests: ``answer`` uses it, and so does the prompt
        runtime (``models.prompt_runtime``) that applies a prompt book outside the framework,
        so a deployed prompt is sent exactly as it was scored.
        """
        raise NotImplementedError(f"{type(self).__name__} does not expose its requests")

    def openai_request(self, prompt: Prompt, example: Example) -> dict[str, Any]:
        """The OpenAI-style chat request body (``model``, ``messages`` with images inline,
        ``temperature``, ``max_tokens``, ...) that asks what ``answer`` asks: what a vision
        model served over HTTP (vLLM) takes. Text-only models have none."""
        raise NotImplementedError(f"{type(self).__name__} is not a vision chat model: use messages()")

    def page_text(self, example: Example) -> str | None:
        """The page's text as this model reads it (its OCR), for retrieving demos by text
        (``demo_retrieval.OCR_TFIDF``); None for a model that reads pixels only. Must be a
        pure function of the image and ``cache_identity()``, like the answers."""
        return None

    def generation_params(self) -> dict[str, Any]:
        """Generation settings that change the output (part of ``cache_identity``)."""
        return {}

    def cache_identity(self) -> dict[str, Any]:
        """Everything besides the request that changes an answer (cache-key part).

        The default is name, revision and ``generation_params()``; models add library
        versions, dtype, device type and pre-processing settings.
        """
        return {"model": self.name, "revision": self.revision, "generation": self.generation_params()}

    @property
    def preferred_batch_size(self) -> int:
        """How many requests the evaluator should send per ``answer`` call."""
        return 8

    def diagnostics(self) -> dict[str, int]:
        """Counters worth a line in the run summary (e.g. demos shortened to fit a context)."""
        return {}

    def close(self) -> None:
        """Release processes, servers or GPU memory. Idempotent."""

    def use_cache(self, cache: DerivedDataCache) -> None:
        """Receive the run's cache for derived data the model keeps itself (e.g. OCR text).

        Default: nothing to cache.
        """


def reads_text(model: AnswerModel) -> bool:
    """Whether ``model`` gives its pages' text (overrides ``AnswerModel.page_text``)."""
    own = getattr(type(model), "page_text", None)
    return own is not None and own is not AnswerModel.page_text
