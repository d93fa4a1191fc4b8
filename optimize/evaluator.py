"""The evaluator: the only code that runs an answer model.

It batches requests, serves repeats from the SQLite cache, charges a budget, scores
with the metric and reports every score as it happens (so the run loop logs it at
once). Optimizers receive one built from their visible pair (test split empty): its
only public ways to an answer are charged, its budget is read-only, and nothing it
holds leads to a test example.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from optimize.answer_store import AnswerStore
from prompt_opt_api import (
    FULL_VAL,
    AnswerModel,
    BudgetExhausted,
    Example,
    ExampleResult,
    HeldOutAccessError,
    Metric,
    Pair,
    Prompt,
    Score,
    cache_key,
    mean,
)


class Budget:
    """Answer-model evaluations allowed for one pair; only the engine charges it.

    One unit is one (prompt, example) scored, whether computed or served from cache:
    counting logical evaluations keeps a resumed run's decisions identical to an
    uninterrupted run's.

    Args:
        max_evaluations: The limit; None for no limit.
    """

    __slots__ = ("_limit", "_used")

    def __init__(self, max_evaluations: int | None = None) -> None:
        self._limit = max_evaluations
        self._used = 0

    @property
    def limit(self) -> int | None:
        return self._limit

    @property
    def used(self) -> int:
        return self._used

    @property
    def remaining(self) -> int | None:
        return None if self._limit is None else self._limit - self._used

    def _charge(self, n: int) -> None:
        if n < 0:
            raise ValueError(f"cannot charge {n} evaluations")
        if self._limit is not None and self._used + n > self._limit:
            raise BudgetExhausted(f"budget of {self._limit} evaluations: {self._used} used, {n} more requested")
        self._used += n


class _BudgetView:
    """Read-only face of a ``Budget`` (what optimizers see)."""

    __slots__ = ("_budget",)

    def __init__(self, budget: Budget) -> None:
        self._budget = budget

    limit = property(lambda self: self._budget.limit)
    used = property(lambda self: self._budget.used)
    remaining = property(lambda self: self._budget.remaining)

    def __repr__(self) -> str:
        return f"BudgetView(used={self.used}, limit={self.limit})"


ScoreListener = Callable[[Prompt, str, Score], None]


def answer_cache_key(model_identity: dict[str, Any], prompt: Prompt, example: Example) -> str:
    """The answer cache key: model identity (weights, versions, settings) + the request."""
    return cache_key({"model": model_identity, "prompt": prompt.identity(), "example": example.identity()})


class Evaluator:
    """Scores prompts on examples of one pair with one answer model.

    Public interface (all an optimizer can reach): ``score`` and the read-only
    ``budget``; the run loop also reads ``model_calls`` and ``cache_hits``.

    Args:
        model: The answer model.
        store: Answer cache.
        metric: Per-example metric (CER).
        pair: The pair this evaluator may score; an optimizer's evaluator gets the
            visible pair (test empty), so it cannot even name a test example.
        budget: Budget charged by ``score``.
        batch_size: Requests per ``model.answer`` call (default: the model's preference).
        listener: Called as ``listener(prompt, split, score)`` after each score.
        allow_test: Only the run loop's final scoring sets this.
    """

    __slots__ = ("_model", "_store", "_metric", "_budget", "_batch_size", "_listener", "_allow_test",
                 "_split_of", "_full_val", "_identity", "_model_calls", "_cache_hits", "_charged")

    def __init__(
        self,
        model: AnswerModel,
        store: AnswerStore,
        metric: Metric,
        pair: Pair,
        budget: Budget | None = None,
        batch_size: int | None = None,
        listener: ScoreListener | None = None,
        allow_test: bool = False,
    ) -> None:
        self._model = model
        self._store = store
        self._metric = metric
        self._budget = budget or Budget()
        self._batch_size = max(1, batch_size or model.preferred_batch_size)
        self._listener = listener
        self._allow_test = allow_test
        splits = ("train", "val", "test") if allow_test else ("train", "val")
        # example -> (split, the evaluator's own copy): scoring always uses the stored
        # copy, so an object that merely compares equal cannot bring its own answer.
        self._split_of = {ex: (name, ex) for name in splits for ex in getattr(pair, name)}
        self._full_val = Counter(pair.val)
        self._identity: dict[str, Any] | None = None
        self._model_calls = 0  # requests actually sent to the model (cache misses)
        self._cache_hits = 0
        self._charged: set[str] = set()  # answer keys already paid for in this evaluator

    @property
    def budget(self) -> _BudgetView:
        """The pair's budget, read-only."""
        return _BudgetView(self._budget)

    @property
    def model_name(self) -> str:
        return self._model.name

    @property
    def model_calls(self) -> int:
        return self._model_calls

    @property
    def cache_hits(self) -> int:
        return self._cache_hits

    def _own_copies(self, examples: Sequence[Example], what: str, allowed: str | None) -> tuple[Example, ...]:
        """The evaluator's stored copies of ``examples``; anything else is refused.

        Args:
            examples: Examples (or demos) as the optimizer passed them.
            what: ``example`` or ``demo``, for the message.
            allowed: The one split they must come from (``train`` for demos), or None
                for any split this evaluator holds.
        """
        own = []
        for ex in examples:
            found = self._split_of.get(ex) if type(ex) is Example else None
            if found is None or (allowed is not None and found[0] != allowed):
                where = "train split" if allowed else "train or val split"
                raise HeldOutAccessError(
                    f"a {what} is not in this pair's {where} ({getattr(ex, 'source_row', ex)!s:.120}): optimizers may "
                    "score only the pair they were given, demos come from train, and the test split is never theirs"
                )
            own.append(found[1])
        return tuple(own)

    def _label(self, examples: Sequence[Example]) -> str:
        names = {self._split_of[ex][0] for ex in examples}
        if names == {"val"}:
            return FULL_VAL if Counter(examples) == self._full_val else "val-subset"
        return names.pop() if len(names) == 1 else "mixed"

    def _keys(self, prompt: Prompt, examples: Sequence[Example]) -> list[str]:
        if self._identity is None:
            self._identity = self._model.cache_identity()
        return [answer_cache_key(self._identity, prompt, ex) for ex in examples]

    def _answers(self, prompt: Prompt, examples: Sequence[Example], keys: list[str]) -> list[str]:
        """Model answers (cached, batched). Uncharged: only ``score`` may call it."""
        cached = self._store.get_answers(keys)
        todo = {k: ex for k, ex in zip(keys, examples) if k not in cached}
        self._cache_hits += len(keys) - len(todo)
        pending = list(todo.items())
        for start in range(0, len(pending), self._batch_size):
            chunk = pending[start : start + self._batch_size]
            started = time.monotonic()
            outputs = self._model.answer([(prompt, ex) for _, ex in chunk])
            elapsed = time.monotonic() - started
            if len(outputs) != len(chunk):
                raise RuntimeError(
                    f"answer model {self._model.name!r} returned {len(outputs)} answers for {len(chunk)} requests"
                )
            fresh = {k: str(out) for (k, _), out in zip(chunk, outputs)}
            self._store.put_answers(fresh, self._model.name)  # commit per batch: a kill loses one batch at most
            self._store.record_timing("answer", self._model.name, len(chunk), elapsed)  # for plan=true
            self._model_calls += len(chunk)
            cached.update(fresh)
        return [cached[k] for k in keys]

    def score(self, prompt: Prompt, examples: Sequence[Example]) -> Score:
        """Mean CER and exact match of ``prompt`` on ``examples``, with per-example answers.

        The score is labelled ``val`` only when ``examples`` is the whole val split
        (each example once); see ``prompt_opt_api.PromptEvaluator``.

        Charges one evaluation per (prompt, example) not yet paid for by this evaluator
        (a repeat gives the same answer, so it is free; a cached answer from another run
        is not).

        Raises:
            BudgetExhausted: if the budget cannot pay for the unpaid evaluations
                (nothing is scored then).
            HeldOutAccessError: if an example is not in this evaluator's splits (for an
                optimizer: anything but the pair's train and val examples), or a demo
                is not a train example.
            ValueError: if ``examples`` is empty.
        """
        if not examples:
            raise ValueError("cannot score a prompt on zero examples")
        examples = self._own_copies(examples, "example", allowed=None)
        prompt = dataclasses.replace(prompt, demos=self._own_copies(prompt.demos, "demo", allowed="train"))
        split = self._label(examples)
        keys = self._keys(prompt, examples)
        unpaid = [k for k in dict.fromkeys(keys) if k not in self._charged]
        self._budget._charge(len(unpaid))
        self._charged.update(unpaid)
        predictions = self._answers(prompt, examples, keys)
        results = tuple(
            ExampleResult(
                source_row=ex.source_row,
                answer=ex.answer,
                prediction=pred,
                cer=self._metric.cer(ex.answer, pred),
                exact=self._metric.exact(ex.answer, pred),
            )
            for ex, pred in zip(examples, predictions)
        )
        score = Score(
            cer=mean([r.cer for r in results]),
            exact_match=mean([1.0 if r.exact else 0.0 for r in results]),
            results=results,
        )
        if self._listener is not None:
            self._listener(prompt, split, score)
        return score

    def race(self, prompts: Sequence[Prompt], examples: Sequence[Example], incumbent: Score | None = None,
             minibatch: int = 4, confidence: float = 0.95) -> list[Score | None]:
        """Score ``prompts`` on ``examples`` with racing (see ``optimize.racing``).

        Each prompt is scored on the first ``minibatch`` examples (a ``val-subset`` score
        when ``examples`` is val) and dropped (None) if clearly worse than the best full
        score so far (``incumbent`` first); otherwise on all of ``examples`` (the
        minibatch answers are not paid twice). Scores come back in order.
        """
        from optimize.racing import clearly_worse

        examples = tuple(examples)
        head = examples[:minibatch]
        best = incumbent
        out: list[Score | None] = []
        for prompt in prompts:
            if best is not None and 0 < len(head) < len(examples):
                trial = self.score(prompt, head)
                if clearly_worse(trial.results, best.results, confidence):
                    out.append(None)
                    continue
            full = self.score(prompt, examples)
            out.append(full)
            if best is None or full.cer < best.cer:
                best = full
        return out
