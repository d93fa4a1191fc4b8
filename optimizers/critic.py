"""``optimizer=critic``: an arena loop, OPRO-style.

Each round the advisor sees the best prompts so far with their val CER, the current
best prompt's worst mistakes on train (expected vs answered, with an error class) and
how many of its val answers are wrong in each way (``prompt_opt_api.error_classes``:
counts only, no val answer is shown); it writes a short analysis and new prompts (a
rewrite, an edit fixing the most frequent mistake, an edit adding one constraint). They
are scored on val; the pool keeps them all and the best competes. Rule edits that need no
LLM (format hint from the train answers, "copy exactly", "value only", field location)
are tried on the baseline and on each new best, the format hint first when format errors
are the commonest on val, so a weak advisor still gets somewhere. Stops on budget or after
``patience`` rounds without improvement. With a panel of advisors (``advisor=panel``)
the members take turns, one round each, and each prompt is credited to its writer.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from typing import Unpack

from optimizers import meta_prompts as text
from optimizers.advisor_writes import (
    conversation,
    error_counts_block,
    mistakes_block,
    placeholder_rule,
    scored_block,
    task_block,
    with_page_images,
)
from optimizers.mistakes import worst_mistakes
from optimizers.pool_optimizer import PoolOptimizer, PoolOptions
from optimizers.prompt_edits import RULE_EDIT_KINDS, rule_edits
from optimizers.prompt_pool import PromptPool, ask_for_prompts
from prompt_opt_api import Advisor, BudgetExhausted, Pair, Prompt, PromptEvaluator, Provenance, Trial

log = logging.getLogger(__name__)


class CriticOptimizer(PoolOptimizer):
    """Iterative critic loop with rule edits.

    Args:
        rounds: Advisor rounds at most.
        patience: Stop after this many rounds without a better full-val CER.
        per_round: New prompts asked for per round.
        top_k: Best prompts shown with their scores.
        worst_errors: Train mistakes shown.
        temperature: First temperature of a round's request (re-asks go higher).
        max_reasks: Extra requests per round when the advisor repeats itself.
        rule_edits: Try LLM-free edits of the baseline and of every new best.
        rule_edit_kinds: Which edits (``prompt_edits.RULE_EDIT_KINDS``).
        max_run_advisor_calls: Ask the advisor no more once the run has made this many
            calls (cached ones included, so a resumed run decides the same); None: no cap.
            Pairs after that get the starting prompts and rule edits only.
        show_images: Attach the pages of the worst errors for advisors that read images.
        max_images: Pages attached per request.
        analysis: Ask for two sentences of analysis before the prompts (False: the prompts
            only, for a small advisor whose analysis runs to the reply cap).
        pool: ``manual_candidates``, ``racing``, ``minibatch`` (``PoolOptions``).
    """

    name = "critic"
    uses_advisor = True

    def __init__(self, rounds: int = 4, patience: int = 2, per_round: int = 3, top_k: int = 4,
                 worst_errors: int = 5, temperature: float = 0.8, max_reasks: int = 1, rule_edits: bool = True,
                 show_images: bool = False, max_images: int = 2,
                 rule_edit_kinds: Sequence[str] = RULE_EDIT_KINDS, max_run_advisor_calls: int | None = None,
                 analysis: bool = True, **pool: Unpack[PoolOptions]) -> None:
        super().__init__(**pool)
        self.rounds = rounds
        self.patience = patience
        self.per_round = per_round
        self.top_k = top_k
        self.worst_errors = worst_errors
        self.temperature = temperature
        self.max_reasks = max_reasks
        self.rule_edits = rule_edits
        self.rule_edit_kinds = tuple(rule_edit_kinds)
        self.max_run_advisor_calls = max_run_advisor_calls
        self.show_images = show_images
        self.max_images = max_images
        self.analysis = analysis

    def planned_evaluations(self, pair: Pair, budget: int | None) -> int | None:
        # the starting prompts; rule edits of the baseline and of each round's best; each
        # round the best prompt on train (its mistakes) and the new prompts on val
        edits = len(self.rule_edit_kinds) * (self.rounds + 1) if self.rule_edits else 0
        per_round = len(pair.train) + self.per_round * len(pair.val)
        return (len(self.known_prompts(pair)) + edits) * len(pair.val) + self.rounds * per_round

    def planned_advisor_calls(self, pairs: Sequence[Pair], members: int = 1) -> int | None:
        # members take turns, one round each: a panel asks no more often than one advisor
        calls = len(pairs) * self.rounds * (1 + self.max_reasks)
        if self.max_run_advisor_calls is not None:  # checked before each round: the last one may overshoot
            calls = min(calls, self.max_run_advisor_calls + self.max_reasks)
        return calls

    def optimize(self, pair: Pair, evaluator: PromptEvaluator, advisor: Advisor | None) -> list[Trial]:
        advisor = self.require_advisor(advisor)
        members = tuple(advisor.members())
        pool = self.starting_pool(pair, evaluator)
        # rule edits are cheap ideas, not the whole search: leave one advisor round's worth
        # (released after the rounds: whatever the advisor did not use goes to the edits)
        reserve = self.per_round * len(pair.val) + len(pair.train) if self.rounds else 0
        self._rule_edits(pool, pair, step=0, reserve=reserve)
        stale = 0
        for round_no in range(1, self.rounds + 1):
            if not self._may_ask(advisor, pool, pair, evaluator):
                break
            before = pool.best[1].cer
            # a panel's members take turns, one round each; a prompt is credited to its writer
            writer = members[(round_no - 1) % len(members)]
            try:
                asked = self._round(pool, pair, evaluator, writer, round_no)
            except BudgetExhausted:
                break
            self._rule_edits(pool, pair, step=round_no, reserve=reserve if round_no < self.rounds else 0)
            log.info("pair %r round %d (%s): %d new prompts, best val CER %.3f", pair.key, round_no, writer.name,
                     len(asked.prompts), pool.best[1].cer if pool.best else float("nan"))
            if asked.budget_spent:
                break
            stale = 0 if pool.best[1].cer < before else stale + 1
            if stale >= self.patience:
                break
        self._rule_edits(pool, pair, step=self.rounds + 1, reserve=0)  # the reserve is free now
        return pool.trials

    def _may_ask(self, advisor: Advisor, pool: PromptPool, pair: Pair, evaluator: PromptEvaluator) -> bool:
        """Whether another round is worth an advisor call: something to improve, a budget that
        can score what it writes, and the run's advisor calls under the cap."""
        if not self.worth_improving(pool, evaluator, needed=len(pair.train) + self.candidate_cost(pair)):
            return False
        return self.max_run_advisor_calls is None or advisor.charges().calls < self.max_run_advisor_calls

    def _round(self, pool: PromptPool, pair: Pair, evaluator: PromptEvaluator, writer: Advisor, round_no: int):
        """One critic round: show ``writer`` the best prompts and the best one's mistakes, score what it writes."""
        best_prompt = pool.best[0]
        mistakes, pages = self._mistakes(pair, evaluator, best_prompt)
        request = text.CRITIC.format(
            task=task_block(pair, evaluator.model_name),
            scored=scored_block(pool.ranked()[: self.top_k]),
            mistakes=mistakes_block(mistakes),
            error_counts=error_counts_block(pool.best[1]),
            lead=text.ANALYSIS_FIRST if self.analysis else text.PROMPTS_ONLY,
            n=self.per_round,
            top_class=Counter(m.error_class for m in mistakes).most_common(1)[0][0] if mistakes else "none",
            placeholder_rule=placeholder_rule(pair),
        )
        user = (with_page_images(request, pages, self.max_images)
                if self.show_images and writer.accepts_images and pages else request)
        asked = ask_for_prompts(writer, conversation(user), self.per_round, sample_base=round_no * 100,
                                known=pool.known_texts(), temperature=self.temperature, max_reasks=self.max_reasks)
        written = Provenance(kind="critic", author=writer.name, detail=f"round{round_no}")
        pool.add([Prompt(t, demos=best_prompt.demos, provenance=written, answer_shapes=best_prompt.answer_shapes)
                  for t in asked.prompts], step=round_no)
        return asked

    def _rule_edits(self, pool: PromptPool, pair: Pair, step: int, reserve: int = 0) -> None:
        """Score rule edits of the current best, keeping ``reserve`` evaluations for the advisor
        (the pool skips edits already scored, so a later call resumes where this one stopped)."""
        if not self.rule_edits or pool.best is None:
            return
        for edit in rule_edits(pool.best[0], pair.train, self.rule_edit_kinds, errors=pool.best[1].results):
            remaining = pool.evaluator.budget.remaining
            if remaining is not None and remaining - len(pair.val) < reserve:
                break  # the rest of the budget is the advisor's
            pool.add([edit], step=step)

    def _mistakes(self, pair: Pair, evaluator: PromptEvaluator, prompt: Prompt):
        """The best prompt's worst mistakes on train, and their pages (none without a train split:
        val answers are for selection, never shown to the advisor)."""
        examples = pair.train
        if not examples:
            return [], []
        score = evaluator.score(prompt, examples)  # a repeat of an earlier request is free
        mistakes = worst_mistakes(examples, score.results, self.worst_errors)
        by_row = {ex.source_row: ex for ex in examples}
        return mistakes, [by_row[m.row] for m in mistakes]
