"""``optimizer=retrieval``: demos chosen per document, the train pages most like the page asked about.

A coordinate search on full val, each step keeping what wins so far:

1. the best instruction without demos (the baseline, the starting prompts: ``chain``
   passes the previous step's winner, and the manual candidates);
2. with ``ks[0]`` retrieved demos, each page similarity in ``signatures`` the answer
   model supports (OCR text needs a model that reads text);
3. the other demo counts in ``ks``, with the best similarity;
4. more demos, cut: each of ``cut_ks`` demos with every demo page cut to ``cut_chars``
   characters around its answer (``Prompt.demo_chars``), with the best similarity, when the
   answer model cuts demo pages (``evaluator.cuts_demo_text``: a model that reads text); a
   model that reads pixels gets no such rule. A query re-reads every demo page, so four cut
   demos cost about what two whole pages do;
5. the best rule (its cut kept) with distinct answers (k different values among the demos, k at least 2):
   when ``distinct_answers`` is set and the best k is 2 or more, and, with ``copy_guard``,
   whenever the best rule's val answers copy a demo (one demo answer is the prediction on
   more than a quarter of the val pages whose answer it is not:
   ``prompt_opt_api.error_classes.copies_a_demo``). It is scored to the end on a tie (the
   early stop drops it only once it is worse), and a rule that copies loses a tie to one
   that does not, so the next step builds on the one that does not;
6. the next ``instructions - 1`` instructions with the best rule.

The guard finds the alternative, it does not overrule val: the engine's winner is still the
lowest full-val CER (the earliest on a tie), so a rule that copies and scores strictly
better on val than every other candidate still wins, and its copies show in the pair's
error classes (``run.json``).

The instruction without demos stays a candidate, so a field where every demo hurts keeps
none; a pair already perfect on val gets no demo rule. The pool is the pair's whole train
split: the engine refuses any other example in it, so val and test pages are never demos.
The winner's rule and pool go into the prompt book, and the runtime retrieves alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Unpack

from optimizers.pool_optimizer import PoolOptimizer, PoolOptions
from optimizers.prompt_pool import PromptPool
from prompt_opt_api import Advisor, Pair, Prompt, PromptEvaluator, Trial, derived_provenance
from prompt_opt_api.demo_cut import MIN_DEMO_CHARS, demo_chars_problem
from prompt_opt_api.demo_retrieval import OCR_TFIDF, PAGE_GRAY16, SIGNATURES, DemoRetrieval
from prompt_opt_api.error_classes import copies_a_demo


class RetrievalOptimizer(PoolOptimizer):
    """Per-document demos by page similarity (``prompt_opt_api.demo_retrieval``).

    Args:
        ks: Demos per request to try; the first is the one similarities are compared at.
        signatures: Page similarities to try (``demo_retrieval.SIGNATURES``), in order.
        distinct_answers: Also try demos with k different answers.
        copy_guard: Try the best rule with distinct answers when its val answers copy a demo,
            whatever ``distinct_answers`` says (one more rule at most).
        cut_ks: Demos per request to try with every demo page cut to ``cut_chars`` characters around
            its answer, after ``ks`` (none: no cut rule; only for a model that cuts demo pages).
        cut_chars: Characters of each demo page a cut rule keeps (at least 40).
        instructions: How many of the best instructions get the best rule (1: the best only).
        stop_when_beaten: Score each rule on val a chunk at a time and stop it once it can no
            longer beat the best so far (``PromptPool.add``): the same winner, fewer queries.
        pool: ``manual_candidates`` (instructions to choose from besides the baseline), ``racing``,
            ``minibatch`` (``PoolOptions``).
    """

    name = "retrieval"

    def __init__(self, ks: Sequence[int] = (2, 1, 3), signatures: Sequence[str] = (OCR_TFIDF, PAGE_GRAY16),
                 distinct_answers: bool = True, instructions: int = 1, stop_when_beaten: bool = True,
                 copy_guard: bool = True, cut_ks: Sequence[int] = (), cut_chars: int = 200,
                 **pool: Unpack[PoolOptions]) -> None:
        super().__init__(**pool)
        if not _demo_counts(cut_ks, empty=True):
            raise ValueError(f"retrieval: cut_ks must be demos counts >= 1, got {_shown(cut_ks)}")
        if cut_chars is None or demo_chars_problem(cut_chars) is not None:
            raise ValueError(f"retrieval: cut_chars must be a whole number of characters, at least {MIN_DEMO_CHARS}, "
                             f"got {cut_chars!r}")
        self.cut_ks, self.cut_chars = tuple(dict.fromkeys(cut_ks)), cut_chars
        self.stop_when_beaten = stop_when_beaten
        self.copy_guard = copy_guard
        if not _demo_counts(ks, empty=False):
            raise ValueError(f"retrieval: ks must be demos counts >= 1, got {_shown(ks)}")
        unknown = [s for s in signatures if s not in SIGNATURES]
        if unknown or not signatures:
            raise ValueError(f"retrieval: signatures must be some of {list(SIGNATURES)}, got {list(signatures)}")
        self.ks = tuple(dict.fromkeys(ks))
        self.signatures = tuple(dict.fromkeys(signatures))
        self.distinct_answers = distinct_answers
        self.instructions = max(1, instructions)

    def planned_evaluations(self, pair: Pair, budget: int | None) -> int | None:
        """An upper bound: every rule, the cut rules too (a model that does not cut demo pages gets none)."""
        distinct = int(self.distinct_answers or self.copy_guard)  # the distinct-answers rule: one at most
        rules = len(self.signatures) + len(self.ks) - 1 + len(self.cut_ks) + distinct + self.instructions - 1
        return (len(self.known_prompts(pair)) + (rules if pair.train else 0)) * len(pair.val)

    def optimize(self, pair: Pair, evaluator: PromptEvaluator, advisor: Advisor | None) -> list[Trial]:
        pool = self.starting_pool(pair, evaluator)
        if not pair.train or not self.worth_improving(pool, evaluator, len(pair.val)):
            return pool.trials  # nothing to retrieve from, nothing to gain (val CER 0), or no budget
        instructions = [p for p, _ in pool.ranked() if not p.demos and p.retrieval is None][: self.instructions]
        signatures = [s for s in self.signatures if s in evaluator.retrieval_signatures]
        search = _RuleSearch(pool, instructions[0], pair, self.stop_when_beaten)
        for signature in signatures:
            search.try_rule(self.ks[0], signature, False, step=1)
        if search.best is None:
            return pool.trials
        for k in self.ks[1:]:
            search.try_rule(k, search.best.signature, False, step=2)
        for k in self.cut_ks if getattr(evaluator, "cuts_demo_text", False) else ():
            search.try_rule(k, search.best.signature, False, step=2, demo_chars=self.cut_chars)
        wanted = self.distinct_answers and search.best.k >= 2
        if (wanted or (self.copy_guard and search.best_copies)) and len(pair.train) >= 2:
            search.try_rule(max(2, search.best.k), search.best.signature, True, step=3, keep_ties=True,
                            demo_chars=search.best_chars)
        for instruction in instructions[1:]:
            search.try_rule(search.best.k, search.best.signature, search.best.distinct_answers, step=4,
                            instruction=instruction, demo_chars=search.best_chars)
        return pool.trials


def _demo_counts(value: object, empty: bool) -> bool:
    """Whether ``value`` is a sequence of whole numbers >= 1 (``empty``: none allowed)."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        return False
    return (empty or len(value) > 0) and all(type(k) is int and k >= 1 for k in value)


def _shown(value: object) -> str:
    return str(list(value)) if isinstance(value, Sequence) and not isinstance(value, (str, bytes)) else repr(value)


class _RuleSearch:
    """The best retrieval rule so far and the scoring of one more."""

    def __init__(self, pool: PromptPool, instruction: Prompt, pair: Pair, stop_when_beaten: bool) -> None:
        self.pool, self.instruction, self.train = pool, instruction, pair.train
        self.stop_when_beaten = stop_when_beaten
        self.best: DemoRetrieval | None = None
        self.best_chars: int | None = None  # the best rule's demo cut (None: whole pages)
        self.cer = float("inf")
        self.best_copies = False  # whether the best rule's val answers copy a demo

    def try_rule(self, k: int, signature: str, distinct_answers: bool, step: int,
                 instruction: Prompt | None = None, keep_ties: bool = False, demo_chars: int | None = None) -> None:
        """Score the rule on full val (unless the budget is spent); keep it if it is the best so far,
        or ties with a best that copies a demo and copies none itself.

        ``keep_ties``: with the early stop, score a rule to the end unless it is worse than the best.
        ``demo_chars``: each demo page cut to that many characters around its answer (None: whole).
        """
        if self.pool.budget_spent:
            return
        rule = DemoRetrieval(min(k, len(self.train)), self.train, signature, distinct_answers)
        instruction = instruction or self.instruction
        prompt = Prompt(instruction.text, provenance=derived_provenance(instruction.provenance, "retrieval"),
                        retrieval=rule, demo_chars=demo_chars, answer_shapes=instruction.answer_shapes)
        for _, score in self.pool.add([prompt], step=step, stop_when_beaten=self.stop_when_beaten,
                                      keep_ties=keep_ties):
            copies = copies_a_demo(score.results)
            if self.best is None or score.cer < self.cer or (score.cer == self.cer and self.best_copies and not copies):
                self.best, self.cer, self.best_copies, self.best_chars = rule, score.cer, copies, demo_chars
