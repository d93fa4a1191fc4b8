"""The base of the optimizers that grow a pool of scored candidates (advisor, critic,
fewshot, retrieval, textgrad, dspy): what they share, so each states only its search."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypedDict

from optimizers.prompt_pool import PromptPool
from optimizers.unique_prompts import unique_prompts
from prompt_opt_api import Advisor, Optimizer, Pair, Prompt, PromptEvaluator, baseline_prompt, manual_prompts


class PoolOptions(TypedDict, total=False):
    """The options every pool optimizer takes (``conf/pool_options.yaml``): a subclass takes
    them as ``**pool: Unpack[PoolOptions]`` and hands them to ``PoolOptimizer.__init__``; the
    configuration check knows them by these names and types."""

    manual_candidates: Sequence[str]
    racing: bool
    minibatch: int


class PoolOptimizer(Optimizer):
    """An optimizer that starts from a pool scored on full val: the baseline, the starting
    prompts (``starting_from``: what ``chain`` passes on) and hand-written candidates.

    Args:
        manual_candidates: Hand-written prompts scored beside the baseline.
        racing: Score new candidates with racing (``evaluator.race``: a minibatch first).
        minibatch: Racing minibatch size.
    """

    def __init__(self, manual_candidates: Sequence[str] = (), racing: bool = False, minibatch: int = 4) -> None:
        self.manual_candidates = tuple(manual_candidates)
        self.racing = racing
        self.minibatch = minibatch

    def known_prompts(self, pair: Pair) -> list[Prompt]:
        """The baseline, the starting prompts and the manual candidates, repeats dropped as
        the pool drops them (what ``starting_pool`` scores; the run plan counts them)."""
        return unique_prompts([baseline_prompt(), *self.starting_prompts, *manual_prompts(self.manual_candidates)],
                              key=PromptPool.key)

    def starting_pool(self, pair: Pair, evaluator: PromptEvaluator, racing: bool | None = None) -> PromptPool:
        """A pool holding ``known_prompts`` scored on val (racing as configured unless ``racing`` says)."""
        pool = PromptPool(pair, evaluator, self.name, self.racing if racing is None else racing, self.minibatch)
        pool.add(self.known_prompts(pair), step=0)
        return pool

    def require_advisor(self, advisor: Advisor | None) -> Advisor:
        """The advisor, checked ready (a missing key fails before any work); ValueError if there is none."""
        if advisor is None:
            raise ValueError(f"optimizer={self.name} needs an advisor (advisor=local|gpt4o|...)")
        advisor.check_ready()
        return advisor

    def start(self, pair: Pair, evaluator: PromptEvaluator, advisor: Advisor | None, needed: int = 0,
              needs_train: bool = False) -> tuple[Advisor, PromptPool, bool]:
        """What an advisor-driven search starts from: the advisor (checked ready), the starting
        pool, and whether searching beyond it can pay off (``worth_improving`` with ``needed``
        evaluations, and a train split when the search learns from one)."""
        advisor = self.require_advisor(advisor)
        pool = self.starting_pool(pair, evaluator)
        worth_it = (bool(pair.train) or not needs_train) and self.worth_improving(pool, evaluator, needed)
        return advisor, pool, worth_it

    def candidate_cost(self, pair: Pair) -> int:
        """Evaluations scoring one more candidate costs at least (a racing minibatch, or full val)."""
        return min(len(pair.val), self.minibatch) if self.racing else len(pair.val)

    @staticmethod
    def worth_improving(pool: PromptPool, evaluator: PromptEvaluator, needed: int) -> bool:
        """Whether searching beyond the pool can pay off: the pool has a best prompt that is
        not perfect on val, and the budget still has ``needed`` evaluations (else no prompt an
        advisor writes could be scored: spend no advisor call on it)."""
        if pool.budget_spent or pool.best is None or pool.best[1].cer == 0.0:
            return False
        remaining = evaluator.budget.remaining
        return remaining is None or remaining >= needed
