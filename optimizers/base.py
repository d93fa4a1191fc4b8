"""The optimizer contract shared by every plugin."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

from optimize.contracts import Pair, Prompt, Trial

if TYPE_CHECKING:  # the advisor client imports litellm lazily; only its type is needed here
    from models.advisor_client import Advisor
    from optimize.evaluator import Evaluator


class Optimizer(ABC):
    """Searches for the prompt with the lowest CER for one pair.

    Contract:
        * ``optimize(pair, evaluator, advisor)`` has exactly this signature in every
          plugin (a test checks it); options go to ``__init__``, from Hydra.
        * ``pair.test`` is empty when the run loop calls it: the held-out split is
          scored only by the run loop, and the evaluator refuses test examples.
        * Score only through ``evaluator.score``; never call a model directly.
        * Return every trial made, in order. The run loop selects the trial with the
          lowest CER on ``val`` (earliest wins a tie), so score finalists on ``pair.val``.
        * ``evaluator.score`` raises ``BudgetExhausted`` when the pair's budget is
          spent; a plugin may let it propagate (the run loop keeps the trials already
          reported) or catch it and return what it has.
        * ``advisor`` may be None (``advisor=none``); plugins that need one raise ValueError.
        * Keep no global state: wrap library globals (DSPy/TextGrad settings) inside
          the call, so two runs in one process cannot leak into each other.
        * Prompts are values: build new ``Prompt`` objects, never mutate one.

    Attributes:
        name: Short name written to results (``optimizer`` column).
    """

    name: str = "optimizer"

    @abstractmethod
    def optimize(self, pair: Pair, evaluator: Evaluator, advisor: Advisor | None) -> list[Trial]:
        """Propose and score prompts for ``pair``; return every trial made."""


def dataset_question_prompt() -> Prompt:
    """The baseline every optimizer must beat: each example's own question."""
    return Prompt(text="{question}", origin="dataset-question")
