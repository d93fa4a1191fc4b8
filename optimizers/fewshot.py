"""``optimizer=fewshot``: choose k demonstrations from train for an instruction.

Random search over demo sets (seeded), then greedy single swaps on the best set, every
candidate scored on full val. Demos reach the answer model as earlier chat turns (with
their own images for Qwen2-VL). The instruction is the best full-val prompt among the
baseline, the starting prompts (``chain`` passes the previous step's winner) and the
manual candidates.

The copy guard (``copy_guard``): a set whose val answers copy a demo (one demo answer is the
prediction on more than a quarter of the val pages whose answer it is not:
``prompt_opt_api.error_classes.copies_a_demo``) loses a tie to one that does not, and when
the best random set copies, its distinct-answers variant is scored next: each demo with the
copied answer replaced by the first train example (in the split's order) whose answer no
demo of the set has. The swaps start from whichever of the two is better. The engine's
winner is still the lowest full-val CER: the guard finds the alternative, it does not
overrule val.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Unpack

from optimizers.pool_optimizer import PoolOptimizer, PoolOptions
from optimizers.prompt_pool import PromptPool
from prompt_opt_api import Advisor, Example, Pair, Prompt, PromptEvaluator, Score, Trial, derived_provenance
from prompt_opt_api.error_classes import copies_a_demo, fold, repeated_copy


class FewShotOptimizer(PoolOptimizer):
    """Demonstration selection by val CER.

    Args:
        k: Demos per prompt.
        random_sets: Random demo sets tried first.
        swap_candidates: Train examples tried per slot in the greedy pass (0: no greedy pass).
        seed: Random seed of the search (combined with the pair's name).
        copy_guard: Score the distinct-answers variant of the best random set when its val
            answers copy a demo (one more set at most), and prefer a set that copies none on a tie.
        pool: ``manual_candidates`` (instructions to choose from besides the baseline), ``racing``,
            ``minibatch`` (``PoolOptions``).
    """

    name = "fewshot"

    def __init__(self, k: int = 2, random_sets: int = 4, swap_candidates: int = 2, seed: int = 0,
                 copy_guard: bool = True, **pool: Unpack[PoolOptions]) -> None:
        super().__init__(**pool)
        self.k, self.random_sets, self.swap_candidates, self.seed = k, random_sets, swap_candidates, seed
        self.copy_guard = copy_guard

    def planned_evaluations(self, pair: Pair, budget: int | None) -> int | None:
        k = min(self.k, len(pair.train))
        swaps = k * min(self.swap_candidates, len(pair.train) - k)
        demo_sets = self.random_sets + int(self.copy_guard) + swaps if k >= 1 else 0
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

        def with_demos(demos: Sequence[Example], detail: str = "") -> Prompt:
            return Prompt(instruction.text, demos=tuple(demos), answer_shapes=instruction.answer_shapes,
                          provenance=derived_provenance(instruction.provenance, "fewshot", detail))

        for _ in range(self.random_sets):
            if pool.budget_spent:
                return pool.trials
            pool.add([with_demos(rng.sample(train, k))], step=1)
        with_sets = [(p, s) for p, s in pool.scored if p.demos]
        if not with_sets:
            return pool.trials
        # the lowest CER; on a tie a set that copies no demo (min keeps the earliest of equals)
        prompt, score = min(with_sets, key=lambda item: (item[1].cer, copies_a_demo(item[1].results)))
        best = _BestSet(list(prompt.demos), score.cer, copies_a_demo(score.results))
        if self.copy_guard and best.copies and not pool.budget_spent:
            variant = distinct_variant(best.demos, repeated_copy(score.results).value, train)
            for prompt, score in pool.add([with_demos(variant, "distinct-answers")] if variant else [], step=1):
                best.consider(prompt, score)
        if self.swap_candidates:
            self._swaps(pool, best, train, rng, with_demos)
        return pool.trials

    def _swaps(self, pool: PromptPool, best: _BestSet, train: list[Example], rng: random.Random,
               with_demos: Callable[[Sequence[Example]], Prompt]) -> None:
        """Greedy single swaps on the best set, each slot in turn."""
        for slot in range(len(best.demos)):
            others = [ex for ex in train if ex not in best.demos]
            for replacement in rng.sample(others, min(self.swap_candidates, len(others))):
                if pool.budget_spent:
                    return
                trial_set = [*best.demos[:slot], replacement, *best.demos[slot + 1:]]
                for prompt, score in pool.add([with_demos(trial_set)], step=2 + slot):
                    best.consider(prompt, score)


@dataclass
class _BestSet:
    """The demo set the swaps build on: its demos, its val CER, whether its val answers copy a demo."""

    demos: list[Example]
    cer: float
    copies: bool

    def consider(self, prompt: Prompt, score: Score) -> None:
        """Take ``prompt``'s demos if they score lower, or tie with a set that copies and copy none."""
        copies = copies_a_demo(score.results)
        if score.cer < self.cer or (score.cer == self.cer and self.copies and not copies):
            self.demos, self.cer, self.copies = list(prompt.demos), score.cer, copies


def distinct_variant(demos: Sequence[Example], copied: str, train: Sequence[Example]) -> list[Example] | None:
    """``demos`` with each demo whose answer is ``copied`` (folded) replaced by the first train
    example, in order, whose answer no demo of the set has (so the answers differ); None when
    train has too few such examples."""
    answers = {fold(d.answer) for d in demos}
    spare = iter(ex for ex in train if ex not in demos and fold(ex.answer) not in answers | {copied})
    out: list[Example] = []
    for demo in demos:
        if fold(demo.answer) != copied:
            out.append(demo)
            continue
        replacement = next((ex for ex in spare if fold(ex.answer) not in {fold(d.answer) for d in out}), None)
        if replacement is None:
            return None
        out.append(replacement)
    return out
