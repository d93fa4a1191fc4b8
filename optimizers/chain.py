"""``optimizer=chain``: several optimizers in order, each starting from the previous one's
best prompt (e.g. critic, then fewshot on the winning instruction), as DSPy's MIPROv2
tunes instructions and demos together."""

from __future__ import annotations

from collections.abc import Mapping

from prompt_opt_api import Advisor, BudgetExhausted, Optimizer, Pair, PromptEvaluator, Trial


class ChainOptimizer(Optimizer):
    """Runs ``steps`` in the order of their keys (``s1_critic``, ``s2_fewshot``, ...; Hydra keys cannot start with a digit).

    Args:
        steps: Optimizers by step name; Hydra instantiates them from their own YAMLs.
    """

    name = "chain"

    def __init__(self, steps: Mapping[str, Optimizer]) -> None:
        if not steps:
            raise ValueError("optimizer=chain needs at least one step")
        self.steps = [steps[key] for key in sorted(steps)]
        self.uses_advisor = any(step.uses_advisor for step in self.steps)
        self.name = "chain(" + ",".join(step.name for step in self.steps) + ")"

    def optimize(self, pair: Pair, evaluator: PromptEvaluator, advisor: Advisor | None) -> list[Trial]:
        trials: list[Trial] = []
        seeds = list(self.seed_prompts)
        for step in self.steps:
            try:
                made = step.seeded(seeds).optimize(pair, evaluator, advisor)
            except BudgetExhausted:
                break
            trials += made
            full_val = [t for t in made if t.split == "val" and t.score.n == len(pair.val)]
            if full_val:
                seeds = [min(full_val, key=lambda t: t.score.cer).prompt]
        return trials
