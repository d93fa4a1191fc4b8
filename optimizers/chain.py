"""``optimizer=chain``: several optimizers in order, each starting from the previous one's
best prompt (e.g. critic, then fewshot on the winning instruction), as DSPy's MIPROv2
tunes instructions and demos together."""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

from prompt_opt_api import (
    Advisor,
    FULL_VAL,
    BudgetExhausted,
    Example,
    Optimizer,
    Pair,
    Prompt,
    PromptEvaluator,
    Score,
    Trial,
)

from optimizers.prompt_pool import PromptPool
from optimizers.unique_prompts import unique_prompts

log = logging.getLogger(__name__)


class StepEvaluatorView:
    """The pair's evaluator as one chain step sees it: at most ``cap`` more evaluations (None:
    whatever the pair's budget has left), and the full-val scores it gave, so the chain knows
    the step's best prompt even when the step ends by raising ``BudgetExhausted``.

    Without a cap a step that spends whatever is left (the critic's rule edits do) would
    leave the next step nothing. A request is refused when what it may charge (its size,
    counting answers that would be free repeats too, but no more than the pair's budget has
    left) exceeds what the step's share has left less what its requests in flight may still
    charge: conservative, never over, also when the step's threads score at once; once the
    pair's budget is spent the evaluator alone decides (answers already paid for are free).
    The prompts and examples are read once: the view sizes, and the evaluator scores, the same
    ones. Without a cap nothing is checked here: the evaluator charges only answers not paid
    for before.
    """

    def __init__(self, evaluator: PromptEvaluator, cap: int | None, val: Sequence[Example] = ()) -> None:
        self._evaluator = evaluator
        self._cap = cap
        self._end = evaluator.budget.used + (cap or 0)
        self._val = Counter(val)  # every val example once, in any order, is full val
        self._full_val: list[Trial] = []
        self._lock = threading.Lock()
        self._in_flight = 0  # evaluations the requests being scored now may still charge

    @property
    def full_val(self) -> tuple[Trial, ...]:
        """Every full-val score this view gave, in order: what the evaluator scored, whatever the step returns."""
        return tuple(self._full_val)

    @property
    def model_name(self) -> str:
        return self._evaluator.model_name

    @property
    def retrieval_signatures(self) -> tuple[str, ...]:
        return self._evaluator.retrieval_signatures

    @property
    def cuts_demo_text(self) -> bool:
        return getattr(self._evaluator, "cuts_demo_text", False)

    @property
    def budget(self) -> StepEvaluatorView:
        return self

    @property
    def limit(self) -> int | None:
        outer = self._evaluator.budget.limit
        if self._cap is None:
            return outer
        return self._end if outer is None else min(outer, self._end)

    @property
    def used(self) -> int:
        return self._evaluator.budget.used

    @property
    def remaining(self) -> int | None:
        outer = self._evaluator.budget.remaining
        if self._cap is None:
            return outer
        share = max(0, self._end - self.used)
        return share if outer is None else min(outer, share)

    @contextmanager
    def _held(self, needed: int) -> Iterator[None]:
        """Hold what a request of ``needed`` evaluations may charge while it is scored: at most
        ``needed``, and no more than the pair's budget has left (the evaluator refuses the rest).
        Refuse it when the share, less what requests in flight hold, cannot pay for that."""
        if self._cap is None:
            yield
            return
        with self._lock:
            outer = self._evaluator.budget.remaining
            most = needed if outer is None else min(needed, outer)
            if most > max(0, self._end - self.used) - self._in_flight:
                raise BudgetExhausted(f"this chain step's share of the budget is spent ({self.remaining} left)")
            self._in_flight += most
        try:
            yield
        finally:
            with self._lock:
                self._in_flight -= most

    def _keep(self, prompt: Prompt, examples: tuple[Example, ...], score: Score | None) -> None:
        # what the evaluator labels full val (and the engine lets win)
        if score is not None and self._val and Counter(examples) == self._val:
            self._full_val.append(Trial(prompt, FULL_VAL, score))

    def score(self, prompt: Prompt, examples: Sequence[Example]) -> Score:
        examples = tuple(examples)
        with self._held(len(examples)):
            score = self._evaluator.score(prompt, examples)
        self._keep(prompt, examples, score)
        return score

    def race(self, prompts: Sequence[Prompt], examples: Sequence[Example], incumbent: Score | None = None,
             minibatch: int = 4, confidence: float = 0.95) -> list[Score | None]:
        prompts, examples = tuple(prompts), tuple(examples)
        with self._held(len(prompts) * len(examples)):
            scores = self._evaluator.race(prompts, examples, incumbent, minibatch, confidence)
        for prompt, score in zip(prompts, scores):
            self._keep(prompt, examples, score)
        return scores


class ChainOptimizer(Optimizer):
    """Runs ``steps`` in the order of their keys (``s1_critic``, ``s2_fewshot``, ...; Hydra keys cannot start with a digit).

    Args:
        steps: Optimizers by step name; Hydra instantiates them from their own YAMLs.
        budget_shares: Fraction of the pair's budget each step but the last may spend (the
            last gets what is left), e.g. ``[0.6]``: the critic 60 %, fewshot the rest;
            None: no shares (a step may spend everything).
    """

    name = "chain"

    def __init__(self, steps: Mapping[str, Optimizer], budget_shares: Sequence[float] | None = None) -> None:
        if not steps:
            raise ValueError("optimizer=chain needs at least one step")
        self.budget_shares = list(budget_shares) if budget_shares is not None else None
        if self.budget_shares is not None and (len(self.budget_shares) >= len(steps) + 1
                                               or any(not 0 < f <= 1 for f in self.budget_shares)):
            raise ValueError("optimizer=chain: budget_shares needs a fraction in (0, 1] for each step but the last")
        self.steps = [steps[key] for key in sorted(steps)]
        self.uses_advisor = any(step.uses_advisor for step in self.steps)
        self.name = "chain(" + ",".join(step.name for step in self.steps) + ")"

    def known_prompts(self, pair: Pair) -> list[Prompt]:
        # every step scores its own starting prompts; what the later steps start from is not known yet.
        # One text with other demos or trims is another candidate, as in the pool.
        known = [(step.starting_from(self.starting_prompts) if i == 0 else step).known_prompts(pair)
                 for i, step in enumerate(self.steps)]
        return unique_prompts((prompt for prompts in known for prompt in prompts), key=PromptPool.key)

    def planned_evaluations(self, pair: Pair, budget: int | None) -> int | None:
        planned = [step.planned_evaluations(pair, budget) for step in self.steps]
        return None if None in planned else sum(planned)

    def planned_advisor_calls(self, pairs: Sequence[Pair], members: int = 1) -> int | None:
        planned = [step.planned_advisor_calls(pairs, members) for step in self.steps]
        return None if None in planned else sum(planned)

    def optimize(self, pair: Pair, evaluator: PromptEvaluator, advisor: Advisor | None) -> list[Trial]:
        """Each step on its share, from the previous step's best full-val prompt as the evaluator
        scored it (not as a step's returned trials say). A step that ends by raising
        ``BudgetExhausted`` (its share or the pair's budget spent) hands on what it scored too.
        Once the pair's budget is spent the later steps still run: a step that scores answers
        already paid for (the answer-shape step) costs nothing, one that needs new answers is
        refused before any is charged. A step that asks the advisor is skipped when its view has
        nothing left to score with (a nested chain is not: it skips its own such steps). A step
        gets the advisor only when it says it uses one (``uses_advisor``), as the engine hands an
        optimizer one only then."""
        trials: list[Trial] = []
        starting = list(self.starting_prompts)
        total = evaluator.budget.remaining
        for i, step in enumerate(self.steps):
            share = int(self.budget_shares[i] * total) if (
                total is not None and self.budget_shares is not None and i < len(self.budget_shares)) else None
            view = StepEvaluatorView(evaluator, share, pair.val)
            if step.uses_advisor and not isinstance(step, ChainOptimizer) and view.remaining == 0:
                log.info("chain step %s skipped: the pair's budget or its share is spent", step.name)
                continue
            try:
                made = step.starting_from(starting).optimize(pair, view, advisor if step.uses_advisor else None)
            except BudgetExhausted as err:
                log.info("chain step %s ended: %s", step.name, err)
                made = list(view.full_val)
            trials += made
            if view.full_val:
                starting = [min(view.full_val, key=lambda t: t.score.cer).prompt]
        return trials
