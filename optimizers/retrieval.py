"""``optimizer=retrieval``: demos chosen per document, the train pages most like the page asked about.

The instructions are the best full-val prompts among the baseline, the starting prompts
(``chain`` passes the previous step's winner) and the manual candidates; each is then tried with ``k`` retrieved
demos for every ``k`` in ``ks``, all on full val. The pool is the pair's whole train
split: the engine refuses any other example in it, so val and test pages are never demos.
The winner's rule and pool go into the prompt book, and the runtime retrieves alike.
"""

from __future__ import annotations

from collections.abc import Sequence

from optimizers.pool_optimizer import PoolOptimizer
from prompt_opt_api import Advisor, Pair, Prompt, PromptEvaluator, Trial, derived_provenance
from prompt_opt_api.demo_retrieval import DemoRetrieval


class RetrievalOptimizer(PoolOptimizer):
    """Per-document demos by page similarity (``prompt_opt_api.demo_retrieval``).

    Args:
        ks: Demos per request to try, in order.
        instructions: How many of the best instructions get demos (1: the best only).
        manual_candidates: Instructions to choose from besides the baseline.
        racing, minibatch: See ``PoolOptimizer``.
    """

    name = "retrieval"

    def __init__(self, ks: Sequence[int] = (1, 2, 3), instructions: int = 1, manual_candidates: Sequence[str] = (),
                 racing: bool = False, minibatch: int = 4) -> None:
        super().__init__(manual_candidates, racing, minibatch)
        if not ks or any(k < 1 for k in ks):
            raise ValueError(f"retrieval: ks must be demos counts >= 1, got {list(ks)}")
        self.ks = tuple(ks)
        self.instructions = max(1, instructions)

    def planned_evaluations(self, pair: Pair, budget: int | None) -> int | None:
        with_demos = self.instructions * len(self.ks) if pair.train else 0
        return (len(self.known_prompts(pair)) + with_demos) * len(pair.val)

    def optimize(self, pair: Pair, evaluator: PromptEvaluator, advisor: Advisor | None) -> list[Trial]:
        pool = self.starting_pool(pair, evaluator)
        if pool.best is None or not pair.train:
            return pool.trials
        instructions = [p for p, _ in pool.ranked() if not p.demos][: self.instructions]
        for instruction in instructions:
            for k in self.ks:
                if pool.budget_spent:
                    return pool.trials
                rule = DemoRetrieval(k=min(k, len(pair.train)), pool=pair.train)
                with_rule = Prompt(instruction.text, provenance=derived_provenance(instruction.provenance, "retrieval"),
                                   retrieval=rule)
                pool.add([with_rule], step=1)
        return pool.trials
