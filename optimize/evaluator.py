"""The evaluator: the only code that runs an answer model.

It batches requests, serves repeats from the SQLite cache, charges a budget, scores
with the metric and reports every score as it happens (so the run loop logs it at
once). Optimizers receive one built from their visible pair (test split empty): its
only public ways to an answer are charged, its budget is read-only, and nothing it
holds leads to a test example.

What a plugin hands it is never used as is: ``score`` first makes the engine's own plain
copy of the prompt (exact ``str`` text and provenance, demos replaced by the evaluator's
stored train examples), and keys, answers, records and returns that copy's results. A
``Prompt`` subclass with its own ``render`` or a ``str`` subclass with its own ``replace``
never reaches the model (``optimize.plain_copy``). Once the run loop closes it (when
``optimize()`` returns), every call raises ``EvaluatorClosed`` before any model call.

Threads may share it: charging is atomic, and a request another thread is answering right
now is waited for, never sent twice (``optimize.single_flight``), so every answer the model
computes is charged once and counted once.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from optimize.answer_store import AnswerStore
from optimize.attribution import Attribution
from optimize.budget import Budget, ReadOnlyBudget
from optimize.call_gate import CallGate
from optimize.plain_copy import check_train_shapes, plain_prompt, train_shapes
from optimize.plugin_errors import no_examples_message
from optimize.single_flight import SingleFlight
from prompt_opt_api.demo_retrieval import PageSignatures
from prompt_opt_api.error_classes import classify_error
from prompt_opt_api import (
    FULL_VAL,
    AnswerModel,
    Example,
    ExampleResult,
    HeldOutAccessError,
    Metric,
    Pair,
    Prompt,
    Score,
    cache_key,
    mean,
    reads_text,
)


ScoreListener = Callable[[Prompt, str, Score], None]


class EvaluatorClosed(RuntimeError):
    """The evaluator was used after ``optimize()`` returned: a new call is refused before it is
    charged; a call in flight at that moment stops before its next model batch."""


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
        listener: Called as ``listener(prompt, split, score)`` after each score, with the
            engine's plain prompt and the examples' own rows.
        allow_test: Only the engine's own scoring sets this (the run loop's final scoring, ``optimize.apply``);
            without it, a prompt's answer shapes must be shapes of ``pair``'s train answers.
        shown: The copies of ``pair``'s examples the optimizer was handed (no paths to the
            task's files, see ``optimize.shown_pair``), keyed by the pair's own example.
            When given, only those copies are accepted and the scores returned name
            their rows; None: the pair's own examples (the engine's scorers).
        attribution: Checks each prompt's provenance (``optimize.attribution``); None: copied only.
        paid: Answer keys already charged to ``budget`` (a failed attempt's, on retry): free here.
    """

    __slots__ = ("_model", "_store", "_metric", "_budget", "_batch_size", "_listener", "_allow_test",
                 "_split_of", "_full_val", "_identity", "_model_calls", "_cache_hits", "_charged",
                 "_split_name", "_shown_row", "_attribution", "_gate", "_count_lock", "_flights", "_signatures",
                 "_train_shapes")

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
        shown: Mapping[Example, Example] | None = None,
        attribution: Attribution | None = None,
        paid: Iterable[str] = (),
    ) -> None:
        self._model = model
        self._attribution = attribution  # None: provenance is copied, not checked (the engine's own scoring)
        self._store = store
        self._metric = metric
        self._budget = budget or Budget()
        self._batch_size = max(1, batch_size or model.preferred_batch_size)
        self._listener = listener
        self._allow_test = allow_test
        splits = ("train", "val", "test") if allow_test else ("train", "val")
        shown = shown or {}
        # example as the optimizer names it -> (split, the evaluator's own copy): scoring
        # always uses the stored copy, so an object that merely compares equal cannot
        # bring its own answer.
        self._split_of = {shown.get(ex, ex): (name, ex) for name in splits for ex in getattr(pair, name)}
        self._split_name = {own: name for name, own in self._split_of.values()}
        self._shown_row = {ex: shown[ex].source_row for ex in shown}
        self._full_val = Counter(pair.val)
        # an optimizer's evaluator (no test) takes only answer shapes of train answers, as demos come from train
        self._train_shapes = None if allow_test else train_shapes(pair.train)
        self._identity: dict[str, Any] | None = None
        self._model_calls = 0  # requests actually sent to the model (cache misses)
        self._cache_hits = 0
        self._charged: set[str] = set(paid)  # answer keys already paid for in this evaluator
        self._count_lock = threading.Lock()  # guards the charge and the two counters
        self._flights = SingleFlight()  # answers being computed right now, each by one thread
        self._gate = CallGate(EvaluatorClosed, "this evaluator was closed when optimize() returned: "
                                               "no further answer is given")
        # page signatures for demo retrieval, once per image; OCR text only if the model reads text
        self._signatures = PageSignatures(model.page_text if reads_text(model) else None)

    @property
    def budget(self) -> ReadOnlyBudget:
        """The pair's budget, read-only."""
        return ReadOnlyBudget(self._budget)

    @property
    def model_name(self) -> str:
        return self._model.name

    @property
    def retrieval_signatures(self) -> tuple[str, ...]:
        return self._signatures.available()

    @property
    def cuts_demo_text(self) -> bool:
        return self._model.cuts_demo_text is True

    @property
    def model_calls(self) -> int:
        return self._model_calls

    @property
    def cache_hits(self) -> int:
        return self._cache_hits

    def close(self) -> None:
        """Refuse every later call; return once no call is in flight (the run loop calls it
        when ``optimize()`` returns, so a plugin's leftover thread gets no answer)."""
        self._gate.close()

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
        names = {self._split_name[ex] for ex in examples}
        if names == {"val"}:
            return FULL_VAL if Counter(examples) == self._full_val else "val-subset"
        return names.pop() if len(names) == 1 else "mixed"

    def _keys(self, requests: Sequence[tuple[Prompt, Example]]) -> list[str]:
        if self._identity is None:
            self._identity = self._model.cache_identity()
        return [answer_cache_key(self._identity, prompt, ex) for prompt, ex in requests]

    def _answers(self, requests: Sequence[tuple[Prompt, Example]], keys: list[str]) -> list[str]:
        """Model answers (cached, batched; a key another thread is computing is waited for).
        Uncharged: only ``score`` may call it."""
        found = self._store.get_answers(keys)
        wanted = {k: request for k, request in zip(keys, requests) if k not in found}
        computed = 0
        while wanted:
            mine, theirs = self._flights.claim(wanted)
            computed += self._compute({k: wanted[k] for k in mine}, found)
            for key, flight in theirs.items():
                answer = flight.wait()
                if answer is not None:  # None: its owner failed, this thread claims it next round
                    found[key] = answer
            wanted = {k: request for k, request in wanted.items() if k not in found}
        with self._count_lock:
            self._cache_hits += len(keys) - computed
        return [found[k] for k in keys]

    def _compute(self, claimed: dict[str, tuple[Prompt, Example]], found: dict[str, str]) -> int:
        """Answer the keys this thread claimed, batch by batch (those stored by another thread since
        the first look come from the store); each key is released once its answer is stored, the
        rest (on a failure) without one. Adds the answers to ``found``; returns how many were computed."""
        answers: dict[str, str] = {}
        held = set(claimed)
        try:
            answers.update(self._store.get_answers(list(claimed)) if claimed else {})
            self._flights.release(list(answers), answers)
            held -= answers.keys()
            pending = [(k, request) for k, request in claimed.items() if k not in answers]
            for start in range(0, len(pending), self._batch_size):
                self._gate.refuse_if_closed()  # a call in flight when the evaluator closed stops here
                fresh = self._batch(pending[start : start + self._batch_size])
                answers.update(fresh)
                self._flights.release(fresh, fresh)
                held -= fresh.keys()
        finally:
            self._flights.release(held, {})
            found.update(answers)
        return len(pending)

    def _batch(self, chunk: Sequence[tuple[str, tuple[Prompt, Example]]]) -> dict[str, str]:
        """One model call: its answers, stored (committed per batch: a kill loses one batch at most)."""
        started = time.monotonic()
        outputs = self._model.answer([request for _, request in chunk])
        elapsed = time.monotonic() - started
        if len(outputs) != len(chunk):
            raise RuntimeError(
                f"answer model {self._model.name!r} returned {len(outputs)} answers for {len(chunk)} requests"
            )
        fresh = {k: str(out) for (k, _), out in zip(chunk, outputs)}
        self._store.put_answers(fresh, self._model.name)
        self._store.record_timing("answer", self._model.name, len(chunk), elapsed)  # for plan=true
        with self._count_lock:
            self._model_calls += len(chunk)
        return fresh

    def score(self, prompt: Prompt, examples: Sequence[Example]) -> Score:
        """Mean CER and exact match of ``prompt`` on ``examples``, with per-example answers.

        The score is labelled ``val`` only when ``examples`` is the whole val split
        (each example once); see ``prompt_opt_api.PromptEvaluator``. What is scored is
        the engine's plain copy of ``prompt`` (see the module docstring).

        Charges one evaluation per (prompt, example) not yet paid for by this evaluator
        (a repeat gives the same answer, so it is free; a cached answer from another run
        is not).

        Raises:
            BudgetExhausted: if the budget cannot pay for the unpaid evaluations
                (nothing is scored then).
            HeldOutAccessError: if an example is not in this evaluator's splits (for an
                optimizer: anything but the pair's train and val examples), a demo
                is not a train example, or (an optimizer's evaluator) an answer shape is not
                the shape of a train answer or a length cut not the longest train answer's length.
            ValueError: if ``examples`` is empty, or the prompt cuts demo pages (``demo_chars``) for
                a model that does not cut them (``AnswerModel.cuts_demo_text``; nothing is charged).
            TypeError: if ``prompt`` is not a ``Prompt`` or its text or provenance fields not strings.
            ValueError: if its provenance names a kind or an author the run does not allow
                (see ``optimize.attribution``).
            PromptTooLong: if its text or a provenance field is larger than the engine scores
                (``prompt_opt_api.MAX_PROMPT_CHARS``; nothing is charged).
            EvaluatorClosed: after the run loop closed the evaluator (nothing is charged).
        """
        with self._gate.call():
            return self._score(prompt, examples)

    def _score(self, prompt: Prompt, examples: Sequence[Example]) -> Score:
        # The plain copy and the evaluator's own examples come first: nothing the plugin
        # made is used after this point.
        prompt = plain_prompt(prompt, self._own_copies, self._attribution)
        if self._train_shapes is not None:
            check_train_shapes(prompt.answer_shapes, self._train_shapes)
        if prompt.demo_chars is not None and not self.cuts_demo_text:
            raise ValueError(f"answer model {self._model.name!r} does not cut demo pages (it reads pixels, or does "
                             "not implement AnswerModel.cuts_demo_text): score the prompt without demo_chars")
        if not examples:
            raise ValueError(no_examples_message(examples))
        examples = self._own_copies(examples, "example", allowed=None)
        split = self._label(examples)
        # A retrieval rule becomes concrete demos per example: keys and answers are those of
        # ordinary few-shot requests.
        requests = [(prompt.for_example(ex, self._signatures), ex) for ex in examples]
        keys = self._keys(requests)
        with self._count_lock:  # threads may share the evaluator: a key is paid once
            unpaid = [k for k in dict.fromkeys(keys) if k not in self._charged]
            self._budget._charge(len(unpaid))
            self._charged.update(unpaid)
        predictions = self._answers(requests, keys)
        results = tuple(self._result(request, pred) for request, pred in zip(requests, predictions))
        score = Score(
            cer=mean([r.cer for r in results]),
            exact_match=mean([1.0 if r.exact else 0.0 for r in results]),
            results=results,
        )
        if self._listener is not None:
            self._listener(prompt, split, score)
        if not self._shown_row:
            return score
        # The optimizer gets the rows as it was shown them (no path to the task's files).
        return Score(cer=score.cer, exact_match=score.exact_match, results=tuple(
            dataclasses.replace(r, source_row=self._shown_row.get(ex, r.source_row))
            for ex, r in zip(examples, score.results)))

    def _result(self, request: tuple[Prompt, Example], reply: str) -> ExampleResult:
        """One answer scored, and classified when wrong (``prompt_opt_api.error_classes``): by the
        answers of the demos its request showed and the page's text, when the model reads text.
        With answer shapes the trimmed reply is scored and classified; the reply is kept beside it."""
        prompt, ex = request
        prediction = prompt.answer_shapes.trim(reply) if prompt.answer_shapes is not None else reply
        exact = self._metric.exact(ex.answer, prediction)
        error = None if exact else classify_error(
            ex.answer, prediction, demo_answers=[d.answer for d in prompt.demos], same=self._metric.exact,
            page_text=self._model.page_text(ex) if reads_text(self._model) else None)
        return ExampleResult(source_row=ex.source_row, answer=ex.answer, prediction=prediction,
                             cer=self._metric.cer(ex.answer, prediction), exact=exact, error_class=error or "",
                             raw_prediction=reply if prediction != reply else "")

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


def paid_keys(evaluator: Evaluator) -> frozenset[str]:
    """The answer keys charged to ``evaluator``'s budget so far, for the engine (what a failed
    attempt paid is free again on retry: ``optimize.pair_attempt``)."""
    with evaluator._count_lock:
        return frozenset(evaluator._charged)
