"""``optimizer=textgrad``: TextGrad's textual gradient descent on the prompt, with our evaluator.

The prompt is a ``textgrad.Variable``. A forward pass is a TextGrad string function that
answers a train minibatch through the sealed evaluator (charged to the pair's budget)
and returns the loss as text: the mean CER and the concrete mistakes, each with an error
class. ``backward`` asks the advisor for feedback on the prompt and ``TGD.step`` for a
rewrite between TextGrad's ``<IMPROVED_VARIABLE>`` tags, both through a thin engine over
our advisor client (so its reply cache, budget and retries hold). The rewrite must keep
the ``{question}`` placeholder and an output-format clause (told to TGD as constraints,
checked before scoring); it is then scored on full val and kept only if better.

A reply without the tags, a broken constraint or a failed advisor call is a failed step,
counted, and the loop goes on from the best prompt. TextGrad's global backward engine is
cleared for the call and restored afterwards; its log file goes to a temp folder.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from typing import Any

from optimizers import textgrad_prompts as text
from optimizers.advisor_writes import mistakes_block
from optimizers.mistakes import worst_mistakes
from optimizers.pool_optimizer import PoolOptimizer
from optimizers.prompt_pool import PromptPool
from prompt_opt_api import Advisor, Pair, Prompt, PromptEvaluator, Provenance, Trial
from prompt_opt_api.errors import AdvisorBudgetExhausted, AdvisorError, BudgetExhausted

log = logging.getLogger(__name__)
QUESTION = "{question}"


def import_textgrad() -> Any:
    """Import TextGrad without its log file: on import it opens one in ``$TEXTGRAD_LOG_DIR``
    (default ``./logs``) and logs every LLM call there, document values included. It is
    pointed at a private temp folder, closed and removed; its records stay off our console."""
    import sys

    if "textgrad" not in sys.modules:
        private = tempfile.mkdtemp(prefix="textgrad-log-")
        saved = os.environ.get("TEXTGRAD_LOG_DIR")
        os.environ["TEXTGRAD_LOG_DIR"] = private
        try:
            import textgrad  # noqa: F401 - lazy: heavy, and only this plugin needs it
        except ImportError as err:  # pragma: no cover - depends on the install
            raise ImportError("optimizer=textgrad needs the textgrad package: run scripts/setup.sh "
                              "(it installs the 'compare' extra)") from err
        finally:
            if saved is None:
                os.environ.pop("TEXTGRAD_LOG_DIR", None)
            else:
                os.environ["TEXTGRAD_LOG_DIR"] = saved
        tg_log = logging.getLogger("textgrad")
        for handler in list(tg_log.handlers):
            if isinstance(handler, logging.FileHandler):
                tg_log.removeHandler(handler)
                handler.close()
        tg_log.propagate = False
        shutil.rmtree(private, ignore_errors=True)
    return sys.modules["textgrad"]


def advisor_engine(advisor: Advisor, temperature: float | None, sample_base: int) -> Any:
    """A TextGrad engine that asks ``advisor`` (cached, budgeted, retried by our client).

    Each call gets its own sample index from ``sample_base``: a step that repeats an
    earlier step's request (the same minibatch, back at the same best prompt) gets a new
    reply, not the cached one, while a resumed run still replays its replies.
    """
    from textgrad.engine import EngineLM

    class AdvisorEngine(EngineLM):
        model_string = advisor.name

        def __init__(self) -> None:
            self.calls = 0

        def generate(self, prompt: str, system_prompt: str | None = None, **kwargs: Any) -> str:
            messages = [{"role": "system", "content": system_prompt or self.system_prompt},
                        {"role": "user", "content": prompt}]
            self.calls += 1
            return advisor.complete(messages, temperature=temperature, sample=sample_base + self.calls)

        def __call__(self, prompt: str, **kwargs: Any) -> str:
            return self.generate(prompt, **kwargs)

    return AdvisorEngine()


@contextlib.contextmanager
def no_global_engine(textgrad: Any) -> Iterator[None]:
    """Run with TextGrad's process-wide backward engine unset, then put back what was there."""
    singleton = textgrad.config.SingletonBackwardEngine()
    saved = singleton.engine
    singleton.engine = None
    try:
        yield
    finally:
        singleton.engine = saved


def constraint_problem(candidate: str, had_format_clause: bool) -> str | None:
    """Why a rewrite breaks the constraints (None: it keeps them)."""
    if not candidate.strip():
        return "empty"
    if QUESTION not in candidate:
        return "lost the {question} placeholder"
    if re.search(r"\{(?!question\})[^{}]*\}", candidate) or candidate.strip().startswith("{{"):
        return "other braces than {question}"
    if len(candidate) > 600:
        return "longer than 600 characters"
    if had_format_clause and not any(m in candidate.lower() for m in text.FORMAT_CLAUSE_MARKERS):
        return "dropped the output-format clause"
    return None


class TextGradOptimizer(PoolOptimizer):
    """TextGrad (textual gradient descent) over the instruction.

    Args:
        steps: TGD steps at most (each: a train minibatch, one backward and one update call).
        minibatch: Train examples answered per forward pass, cycling through train (textgrad
            does not race: new prompts are scored on full val).
        worst_errors: Wrong answers shown in the loss text.
        temperature: Advisor temperature for backward and update calls.
        manual_candidates: Hand-written prompts scored beside the baseline; the best is the start.
        constraints: Told to TGD (``constraints=``) and checked before a rewrite is scored.
        gradient_memory: Past feedback TGD shows with each update (TextGrad's option).

    A failed step (no tags, a broken constraint, a failed advisor call) is logged with its
    reason (``textgrad step N failed``); nothing of one pair is kept for the next.
    """

    name = "textgrad"
    uses_advisor = True

    def __init__(self, steps: int = 3, minibatch: int = 4, worst_errors: int = 4, temperature: float = 0.7,
                 manual_candidates: Sequence[str] = (), constraints: Sequence[str] = text.CONSTRAINTS,
                 gradient_memory: int = 0) -> None:
        super().__init__(manual_candidates, racing=False, minibatch=minibatch)
        self.steps = steps
        self.worst_errors = worst_errors
        self.temperature = temperature
        self.constraints = tuple(constraints)
        self.gradient_memory = gradient_memory

    def optimize(self, pair: Pair, evaluator: PromptEvaluator, advisor: Advisor | None) -> list[Trial]:
        advisor, pool, worth_it = self.start(pair, evaluator, advisor, needs_train=True)
        if not worth_it:
            return pool.trials
        textgrad = import_textgrad()
        members = tuple(advisor.members())
        with no_global_engine(textgrad):
            _Descent(self, textgrad, pair, evaluator, pool).run(members)
        return pool.trials

    def planned_advisor_calls(self, pairs: Sequence[Pair], members: int = 1) -> int | None:
        """Each step: one backward (feedback) and one update call."""
        return 2 * self.steps * len(pairs)


class _Descent:
    """One pair's descent: the TextGrad variable, its optimizer and the best prompt so far.
    Built per ``optimize`` call, so nothing of one pair reaches the next."""

    def __init__(self, options: TextGradOptimizer, textgrad: Any, pair: Pair, evaluator: PromptEvaluator,
                 pool: PromptPool) -> None:
        self.options, self.textgrad, self.pair, self.evaluator, self.pool = options, textgrad, pair, evaluator, pool
        self.best_prompt, self.best_score = pool.best
        role = text.PROMPT_ROLE.format(doc_class=pair.doc_class, question_type=pair.question_type)
        self.variable = textgrad.Variable(self.best_prompt.text, requires_grad=True, role_description=role)
        self.had_format_clause = any(m in self.best_prompt.text.lower() for m in text.FORMAT_CLAUSE_MARKERS)
        self.size = max(1, min(options.minibatch, len(pair.train)))
        self.tgd: Any = None  # one TGD for the whole descent: its gradient memory carries over
        self.failed_steps: list[str] = []  # why each failed step failed (this pair only)

    def run(self, members: Sequence[Advisor]) -> None:
        for step in range(1, self.options.steps + 1):
            if self.best_score.cer == 0.0:
                break  # nothing left to improve on val
            remaining = self.evaluator.budget.remaining
            if remaining is not None and remaining < self.size + len(self.pair.val):
                break  # a rewrite could not be scored: spend no advisor call
            writer = members[(step - 1) % len(members)]
            try:
                candidate = self._rewrite(step, writer)
            except (BudgetExhausted, AdvisorBudgetExhausted):
                return
            except (AdvisorError, IndexError) as err:  # IndexError: TGD found no <IMPROVED_VARIABLE> tags
                self._failed(step, f"{type(err).__name__}: {str(err)[:200]}")
                continue
            problem = constraint_problem(candidate, self.had_format_clause)
            if problem:
                self._failed(step, problem)
                continue
            self._score(candidate, step, writer)
            if self.pool.budget_spent:
                return

    def _rewrite(self, step: int, writer: Advisor) -> str:
        """One forward pass on a train minibatch, one backward and one update: the rewritten text."""
        engine = advisor_engine(writer, self.options.temperature, sample_base=step * 100)
        start = ((step - 1) * self.size) % len(self.pair.train)
        batch = [self.pair.train[(start + i) % len(self.pair.train)] for i in range(self.size)]
        probe = Provenance(kind="textgrad", author=writer.name, detail="forward")

        def forward(instruction: Any) -> str:
            score = self.evaluator.score(Prompt(instruction.value, provenance=probe), batch)
            mistakes = worst_mistakes(batch, score.results, self.options.worst_errors)
            lines = mistakes_block(mistakes) if mistakes else text.NO_MISTAKES
            return text.EVALUATION.format(cer=score.cer, n=score.n, exact=sum(r.exact for r in score.results),
                                          mistakes=lines)

        if self.tgd is None:
            self.tgd = self.textgrad.TGD([self.variable], engine=engine, constraints=list(self.options.constraints),
                                        gradient_memory=self.options.gradient_memory)
        self.tgd.engine = engine  # this step's writer (a panel's members take turns)
        self.tgd.zero_grad()
        loss = self.textgrad.autograd.StringBasedFunction(forward, text.FUNCTION_PURPOSE)(
            inputs={"instruction": self.variable}, response_role_description=text.EVALUATION_ROLE)
        loss.backward(engine)
        self.tgd.step()
        return self.variable.value.strip()

    def _score(self, candidate: str, step: int, writer: Advisor) -> None:
        """Score a rewrite on full val; the next step descends from it only if it is better."""
        written = Provenance(kind="textgrad", author=writer.name, detail=f"step{step}")
        added = self.pool.add([Prompt(candidate, provenance=written)], step=step)
        if added and added[0][1].cer < self.best_score.cer:
            self.best_prompt, self.best_score = added[0]
            log.info("pair %r textgrad step %d: val CER %.3f (kept)", self.pair.key, step, self.best_score.cer)
        else:
            self.variable.set_value(self.best_prompt.text)  # not better on val: back to the best
            log.info("pair %r textgrad step %d: no better on val", self.pair.key, step)

    def _failed(self, step: int, reason: str) -> None:
        self.failed_steps.append(f"step {step}: {reason}")
        log.warning("pair %r textgrad step %d failed (%s); going on from the best prompt", self.pair.key, step, reason)
        self.variable.set_value(self.best_prompt.text)
