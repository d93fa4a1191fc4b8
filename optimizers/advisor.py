"""``optimizer=advisor``: one round of advisor proposals. Ask the advisor for several candidate
prompts for the pair, score them all on val, keep the best. A panel's members
(``advisor=panel``) each get the same request."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Unpack

from optimizers import meta_prompts as text
from optimizers.advisor_writes import conversation, mistakes_block, placeholder_rule, task_block
from optimizers.mistakes import worst_mistakes
from optimizers.pool_optimizer import PoolOptimizer, PoolOptions
from optimizers.prompt_pool import ask_for_prompts
from prompt_opt_api import Advisor, BudgetExhausted, Pair, Prompt, PromptEvaluator, Provenance, Trial, baseline_prompt


class AdvisorOptimizer(PoolOptimizer):
    """One round of advisor proposals.

    The meta-prompt tells the advisor the task, the document class and field, the data
    set's questions and true train answers, the answer model's name and its mistakes
    with the data set's question (scored on train).

    Args:
        n_candidates: How many new prompts to ask for.
        temperature: Sampling temperature of the first request (re-asks go higher).
        max_reasks: Extra requests when the advisor repeats itself.
        show_mistakes: Train mistakes shown in the meta-prompt.
        pool: ``manual_candidates``, ``racing``, ``minibatch`` (``PoolOptions``).
    """

    name = "advisor"
    uses_advisor = True

    def __init__(self, n_candidates: int = 5, temperature: float = 0.7, max_reasks: int = 2,
                 show_mistakes: int = 5, **pool: Unpack[PoolOptions]) -> None:
        super().__init__(**pool)
        self.n_candidates = n_candidates
        self.temperature = temperature
        self.max_reasks = max_reasks
        self.show_mistakes = show_mistakes

    def planned_evaluations(self, pair: Pair, budget: int | None) -> int | None:
        # the starting prompts on val, the baseline on train, the advisor's prompts on val
        return (len(self.known_prompts(pair)) + self.n_candidates) * len(pair.val) + len(pair.train)

    def planned_advisor_calls(self, pairs: Sequence[Pair], members: int = 1) -> int | None:
        # one request per member and pair, re-asked when it repeats (a reply without tags: one correction more)
        return len(pairs) * members * (1 + self.max_reasks)

    def optimize(self, pair: Pair, evaluator: PromptEvaluator, advisor: Advisor | None) -> list[Trial]:
        advisor, pool, worth_it = self.start(pair, evaluator, advisor, needed=len(pair.train) + len(pair.val))
        if not worth_it:
            return pool.trials
        baseline = baseline_prompt()
        baseline_cer = next((s.cer for p, s in pool.scored if p == baseline), float("nan"))
        mistakes = []
        if pair.train:
            try:
                on_train = evaluator.score(baseline, pair.train)
                mistakes = worst_mistakes(pair.train, on_train.results, self.show_mistakes)
            except BudgetExhausted:
                return pool.trials
        request = text.PROPOSE.format(task=task_block(pair, evaluator.model_name), baseline_cer=f"{baseline_cer:.3f}",
                                      mistakes=mistakes_block(mistakes), n=self.n_candidates,
                                      placeholder_rule=placeholder_rule(pair))
        # each member of a panel gets the same request (a fair comparison of writers); a
        # prompt another member already wrote is a repeat and is credited to the first
        for step, writer in enumerate(advisor.members(), start=1):
            asked = ask_for_prompts(writer, conversation(request), self.n_candidates, sample_base=0,
                                    known=pool.known_texts(), temperature=self.temperature,
                                    max_reasks=self.max_reasks)
            written = Provenance(kind="advisor", author=writer.name)
            pool.add([Prompt(t, provenance=written) for t in asked.prompts], step=step)
            if asked.budget_spent or pool.budget_spent:
                break
        return pool.trials
