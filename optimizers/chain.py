"""``optimizer=chain``: several optimizers in order, each starting from the previous one's
best prompt (e.g. critic, then fewshot on the winning instruction), as DSPy's MIPROv2
tunes instructions and demos together."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from prompt_opt_api import Advisor, BudgetExhausted, Optimizer, Pair, Prompt, PromptEvaluator, Trial


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

    def known_prompts(self, pair: Pair) -> list[Prompt]:
        # every step scores its own starting prompts; the later steps' seeds are not known yet
        unique: dict[str, Prompt] = {}
        for i, step in enumerate(self.steps):
            for prompt in (step.seeded(self.seed_prompts) if i == 0 else step).known_prompts(pair):
                unique.setdefault(prompt.text, prompt)
        return list(unique.values())

    def planned_evaluations(self, pair: Pair, budget: int | None) -> int | None:
        planned = [step.planned_evaluations(pair, budget) for step in self.steps]
        return None if None in planned else sum(planned)

    def planned_advisor_calls(self, pairs: Sequence[Pair], members: int = 1) -> int | None:
        planned = [step.planned_advisor_calls(pairs, members) for step in self.steps]
        return None if None in planned else sum(planned)

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
