"""``optimizer=manual``: score hand-written candidate prompts and keep the best."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from prompt_opt_api import (
    Advisor,
    BudgetExhausted,
    Optimizer,
    Pair,
    Prompt,
    PromptEvaluator,
    Trial,
    baseline_prompt,
    manual_prompts,
)

from optimizers.unique_prompts import unique_prompts


class ManualOptimizer(Optimizer):
    """Scores the baseline (the data set's own question) and configured candidates on val.

    Args:
        candidates: Prompt templates tried for every pair (``{question}`` is replaced
            by each example's question).
        per_pair: Extra templates for one pair, keyed ``"<doc_class> <question_type>"``.
    """

    name = "manual"

    def __init__(self, candidates: Sequence[str] = (), per_pair: Mapping[str, Sequence[str]] | None = None) -> None:
        self.candidates = tuple(candidates)
        self.per_pair = {k: tuple(v) for k, v in (per_pair or {}).items()}

    def proposals(self, pair: Pair) -> list[Prompt]:
        return unique_prompts([baseline_prompt(), *manual_prompts(self.candidates),
                               *manual_prompts(self.per_pair.get(pair.key, ()), detail="per-pair")])

    def known_prompts(self, pair: Pair) -> list[Prompt]:
        return self.proposals(pair)

    def planned_evaluations(self, pair: Pair, budget: int | None) -> int | None:
        return len(self.proposals(pair)) * len(pair.val)

    def optimize(self, pair: Pair, evaluator: PromptEvaluator, advisor: Advisor | None) -> list[Trial]:
        trials: list[Trial] = []
        for step, prompt in enumerate(self.proposals(pair)):
            try:
                score = evaluator.score(prompt, pair.val)
            except BudgetExhausted:
                break
            trials.append(Trial(prompt=prompt, split="val", score=score, step=step, optimizer=self.name))
        return trials
