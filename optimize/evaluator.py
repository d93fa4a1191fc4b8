"""The evaluator: the only code that runs an answer model.

It batches requests, serves repeats from the SQLite cache, charges a budget, scores
with CER and reports every score as it happens (so the run loop can log it at once).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from models.answer_model_base import AnswerModel
from optimize.answer_store import AnswerStore, cache_key
from optimize.contracts import Example, ExampleResult, Pair, Prompt, Score
from tasks.cer_metric import CerMetric, mean


class BudgetExhausted(RuntimeError):
    """The pair's answer-model budget cannot pay for the requested scoring.

    Optimizers may let it propagate: the run loop keeps the best prompt found so far.
    """


class HeldOutAccessError(RuntimeError):
    """An optimizer asked to score test examples, which only the run loop may do."""


@dataclass
class Budget:
    """Answer-model evaluations allowed for one pair.

    One unit is one (prompt, example) scored, whether computed or served from cache:
    counting logical evaluations keeps a resumed run's decisions identical to an
    uninterrupted run's.

    Args:
        max_evaluations: The limit; None for no limit.
    """

    max_evaluations: int | None = None
    used: int = 0

    @property
    def remaining(self) -> int | None:
        return None if self.max_evaluations is None else self.max_evaluations - self.used

    def charge(self, n: int) -> None:
        if self.max_evaluations is not None and self.used + n > self.max_evaluations:
            raise BudgetExhausted(
                f"budget of {self.max_evaluations} evaluations: {self.used} used, {n} more requested"
            )
        self.used += n


ScoreListener = Callable[[Prompt, str, Score], None]


class Evaluator:
    """Scores prompts on examples of one pair with one answer model.

    Args:
        model: The answer model.
        store: Answer cache.
        metric: CER metric.
        pair: The pair being optimized; used to label each score's split.
        budget: Budget charged by ``score``.
        batch_size: Requests per ``model.answer`` call (default: the model's preference).
        listener: Called as ``listener(prompt, split, score)`` after each score.
        allow_test: Only the run loop's final scoring sets this.
    """

    def __init__(
        self,
        model: AnswerModel,
        store: AnswerStore,
        metric: CerMetric,
        pair: Pair,
        budget: Budget | None = None,
        batch_size: int | None = None,
        listener: ScoreListener | None = None,
        allow_test: bool = False,
    ) -> None:
        self.model = model
        self.store = store
        self.metric = metric
        self.budget = budget or Budget()
        self.batch_size = max(1, batch_size or model.preferred_batch_size)
        self.listener = listener
        self.allow_test = allow_test
        self._split_of = {ex: name for name in ("train", "val", "test") for ex in getattr(pair, name)}
        self.model_calls = 0  # requests actually sent to the model (cache misses)
        self.cache_hits = 0

    def split_of(self, examples: Sequence[Example]) -> str:
        names = {self._split_of.get(ex, "other") for ex in examples}
        return names.pop() if len(names) == 1 else "mixed"

    def _key(self, prompt: Prompt, example: Example) -> str:
        return cache_key(
            {
                "model": self.model.name,
                "revision": self.model.revision,
                "generation": self.model.generation_params(),
                "prompt": prompt.identity(),
                "example": example.identity(),
            }
        )

    def answers(self, prompt: Prompt, examples: Sequence[Example]) -> list[str]:
        """Model answers for ``prompt`` on ``examples`` (cached, batched; no budget)."""
        keys = [self._key(prompt, ex) for ex in examples]
        cached = self.store.get_answers(keys)
        todo = {k: ex for k, ex in zip(keys, examples) if k not in cached}
        self.cache_hits += len(keys) - len(todo)
        pending = list(todo.items())
        for start in range(0, len(pending), self.batch_size):
            chunk = pending[start : start + self.batch_size]
            outputs = self.model.answer([(prompt, ex) for _, ex in chunk])
            if len(outputs) != len(chunk):
                raise RuntimeError(
                    f"answer model {self.model.name!r} returned {len(outputs)} answers for {len(chunk)} requests"
                )
            fresh = {k: str(out) for (k, _), out in zip(chunk, outputs)}
            self.store.put_answers(fresh, self.model.name)  # commit per batch: a kill loses one batch at most
            self.model_calls += len(chunk)
            cached.update(fresh)
        return [cached[k] for k in keys]

    def score(self, prompt: Prompt, examples: Sequence[Example]) -> Score:
        """Mean CER and exact match of ``prompt`` on ``examples``, with per-example answers.

        Raises:
            BudgetExhausted: if the budget cannot pay for ``len(examples)`` evaluations
                (nothing is scored then).
            HeldOutAccessError: if ``examples`` include test examples and this
                evaluator is not the run loop's.
            ValueError: if ``examples`` is empty.
        """
        if not examples:
            raise ValueError("cannot score a prompt on zero examples")
        split = self.split_of(examples)
        if not self.allow_test and any(self._split_of.get(ex) == "test" for ex in examples):
            raise HeldOutAccessError("optimizers may not score the held-out test split")
        self.budget.charge(len(examples))
        predictions = self.answers(prompt, examples)
        results = tuple(
            ExampleResult(
                source_row=ex.source_row,
                answer=ex.answer,
                prediction=pred,
                cer=self.metric.cer(ex.answer, pred),
                exact=self.metric.exact(ex.answer, pred),
            )
            for ex, pred in zip(examples, predictions)
        )
        score = Score(
            cer=mean([r.cer for r in results]),
            exact_match=mean([1.0 if r.exact else 0.0 for r in results]),
            results=results,
        )
        if self.listener is not None:
            self.listener(prompt, split, score)
        return score
