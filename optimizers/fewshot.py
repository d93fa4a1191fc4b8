"""``optimizer=fewshot``: choose k demonstrations from train for an instruction.

Random search over demo sets (seeded), then greedy single swaps on the best set, every
candidate scored on full val. Demos reach the answer model as earlier chat turns (with
their own images for Qwen2-VL). The instruction is the best full-val prompt among the
baseline, the starting prompts (``chain`` passes the previous step's winner) and the
manual candidates.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from typing import Unpack

from optimizers.pool_optimizer import PoolOptimizer, PoolOptions
from prompt_opt_api import Advisor, Example, Pair, Prompt, PromptEvaluator, Trial, derived_provenance


class FewShotOptimizer(PoolOptimizer):
    """Demonstration selection by val CER.

    Args:
        k: Demos per prompt.
        random_sets: Random demo sets tried first.
        swap_candidates: Train examples tried per slot in the greedy pass (0: no greedy pass).
        seed: Random seed of the search (combined with the pair's name).
        pool: ``manual_candidates`` (instructions to choose from besides the baseline), ``racing``,
            ``minibatch`` (``PoolOptions``).
    """

    name = "fewshot"

    def __init__(self, k: int = 2, random_sets: int = 4, swap_candidates: int = 2, seed: int = 0,
                 **pool: Unpack[PoolOptions]) -> None:
        super().__init__(**pool)
        self.k, self.random_sets, self.swap_candidates, self.seed = k, random_sets, swap_candidates, seed

    def planned_evaluations(self, pair: Pair, budget: int | None) -> int | None:
        k = min(self.k, len(pair.train))
        demo_sets = self.random_sets + k * min(self.swap_candidates, len(pair.train) - k) if k >= 1 else 0
        return (len(self.known_prompts(pair)) + demo_sets) * len(pair.val)

    def optimize(self, pair: Pair, evaluator: PromptEvaluator, advisor: Advisor | None) -> list[Trial]:
        # the instruction: the best of the baseline, the starting prompts and the candidates
        pool = self.starting_pool(pair, evaluator)
        if pool.best is None or not pair.train or self.k < 1:
            return pool.trials
        instruction = pool.best[0]
        digest = hashlib.sha256(f"{self.seed}|{pair.key}".encode()).hexdigest()
        rng = random.Random(int(digest[:16], 16))
        train = list(pair.train)
        k = min(self.k, len(train))

        def with_demos(demos: Sequence[Example]) -> Prompt:
            return Prompt(instruction.text, demos=tuple(demos), provenance=derived_provenance(instruction.provenance, "fewshot"))

        for _ in range(self.random_sets):
            if pool.budget_spent:
                return pool.trials
            pool.add([with_demos(rng.sample(train, k))], step=1)
        with_sets = [(p, s) for p, s in pool.scored if p.demos]
        if not with_sets or not self.swap_candidates:
            return pool.trials
        best_set = list(min(with_sets, key=lambda item: item[1].cer)[0].demos)
        best_cer = min(s.cer for _, s in with_sets)
        for slot in range(len(best_set)):
            others = [ex for ex in train if ex not in best_set]
            for replacement in rng.sample(others, min(self.swap_candidates, len(others))):
                if pool.budget_spent:
                    return pool.trials
                trial_set = [*best_set[:slot], replacement, *best_set[slot + 1:]]
                for prompt, score in pool.add([with_demos(trial_set)], step=2 + slot):
                    if score.cer < best_cer:
                        best_set, best_cer = list(prompt.demos), score.cer
        return pool.trials
