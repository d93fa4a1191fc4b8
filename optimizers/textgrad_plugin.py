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
from optimizers.prompt_edits import worst_mistakes
from optimizers.prompt_pool import require_advisor, starting_pool
from prompt_opt_api import (
    Advisor,
    AdvisorBudgetExhausted,
    AdvisorError,
    BudgetExhausted,
    Optimizer,
    Pair,
    Prompt,
    PromptEvaluator,
    Trial,
)

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


class TextGradOptimizer(Optimizer):
    """TextGrad (textual gradient descent) over the instruction.

    Args:
        steps: TGD steps at most (each: a train minibatch, one backward and one update call).
        minibatch: Train examples answered per forward pass (cycling through train).
        worst_errors: Wrong answers shown in the loss text.
        temperature: Advisor temperature for backward and update calls.
        seed_candidates: Hand-written prompts scored beside the baseline; the best is the start.
        constraints: Told to TGD (``constraints=``) and checked before a rewrite is scored.
        gradient_memory: Past feedback TGD shows with each update (TextGrad's option).
    """

    name = "textgrad"
    uses_advisor = True

    def __init__(self, steps: int = 3, minibatch: int = 4, worst_errors: int = 4, temperature: float = 0.7,
                 seed_candidates: Sequence[str] = (), constraints: Sequence[str] = text.CONSTRAINTS,
                 gradient_memory: int = 0) -> None:
        self.steps = steps
        self.minibatch = minibatch
        self.worst_errors = worst_errors
        self.temperature = temperature
        self.seed_candidates = tuple(seed_candidates)
        self.constraints = tuple(constraints)
        self.gradient_memory = gradient_memory
        self.failed_steps: list[str] = []  # why each failed step failed (this optimizer's last pair)

    def optimize(self, pair: Pair, evaluator: PromptEvaluator, advisor: Advisor | None) -> list[Trial]:
        advisor = require_advisor(self, advisor)
        pool = starting_pool(self, pair, evaluator, self.seed_candidates)
        self.failed_steps = []
        if pool.best is None or pool.budget_spent or not pair.train or pool.best[1].cer == 0.0:
            return pool.trials
        textgrad = import_textgrad()
        members = tuple(advisor.members())
        with no_global_engine(textgrad):
            self._descend(textgrad, pair, evaluator, pool, members)
        return pool.trials

    def _descend(self, textgrad: Any, pair: Pair, evaluator: PromptEvaluator, pool: Any,
                 members: Sequence[Advisor]) -> None:
        best_prompt, best_score = pool.best
        role = text.PROMPT_ROLE.format(doc_class=pair.doc_class, question_type=pair.question_type)
        variable = textgrad.Variable(best_prompt.text, requires_grad=True, role_description=role)
        had_format_clause = any(m in best_prompt.text.lower() for m in text.FORMAT_CLAUSE_MARKERS)
        size = max(1, min(self.minibatch, len(pair.train)))
        tgd = None
        for step in range(1, self.steps + 1):
            if best_score.cer == 0.0:
                break  # nothing left to improve on val
            remaining = evaluator.budget.remaining
            if remaining is not None and remaining < size + len(pair.val):
                break  # a rewrite could not be scored: spend no advisor call
            writer = members[(step - 1) % len(members)]
            engine = advisor_engine(writer, self.temperature, sample_base=step * 100)
            start = ((step - 1) * size) % len(pair.train)
            batch = [pair.train[(start + i) % len(pair.train)] for i in range(size)]

            def forward(instruction: Any, batch: Sequence = tuple(batch)) -> str:
                score = evaluator.score(Prompt(instruction.value, origin="textgrad-forward"), list(batch))
                mistakes = worst_mistakes(batch, score.results, self.worst_errors)
                lines = mistakes_block(mistakes) if mistakes else text.NO_MISTAKES
                return text.EVALUATION.format(cer=score.cer, n=score.n, exact=sum(r.exact for r in score.results),
                                              mistakes=lines)

            if tgd is None:  # one optimizer for the whole descent: its gradient memory carries over
                tgd = textgrad.TGD([variable], engine=engine, constraints=list(self.constraints),
                                   gradient_memory=self.gradient_memory)
            tgd.engine = engine  # this step's writer (a panel's members take turns)
            tgd.zero_grad()
            try:
                loss = textgrad.autograd.StringBasedFunction(forward, text.FUNCTION_PURPOSE)(
                    inputs={"instruction": variable}, response_role_description=text.EVALUATION_ROLE)
                loss.backward(engine)
                tgd.step()
            except BudgetExhausted:
                return
            except AdvisorBudgetExhausted:
                return
            except (AdvisorError, IndexError) as err:  # IndexError: TGD found no <IMPROVED_VARIABLE> tags
                self._failed(pair, step, f"{type(err).__name__}: {str(err)[:200]}", variable, best_prompt)
                continue
            candidate = variable.value.strip()
            problem = constraint_problem(candidate, had_format_clause)
            if problem:
                self._failed(pair, step, problem, variable, best_prompt)
                continue
            added = pool.add([Prompt(candidate, origin=f"textgrad:{writer.name}/step{step}")], step=step)
            if added and added[0][1].cer < best_score.cer:
                best_prompt, best_score = added[0]  # kept: the next step descends from it
                log.info("pair %r textgrad step %d: val CER %.3f (kept)", pair.key, step, best_score.cer)
            else:
                variable.set_value(best_prompt.text)  # not better on val: back to the best
                log.info("pair %r textgrad step %d: no better on val", pair.key, step)
            if pool.budget_spent:
                return

    def planned_advisor_calls(self, pairs: Sequence[Pair], members: int = 1) -> int | None:
        """Each step: one backward (feedback) and one update call."""
        return 2 * self.steps * len(pairs)

    def known_prompts(self, pair: Pair) -> list[Prompt]:
        return [*super().known_prompts(pair), *(Prompt(t, origin="manual") for t in self.seed_candidates)]

    def _failed(self, pair: Pair, step: int, reason: str, variable: Any, best_prompt: Prompt) -> None:
        self.failed_steps.append(f"step {step}: {reason}")
        log.warning("pair %r textgrad step %d failed (%s); going on from the best prompt", pair.key, step, reason)
        variable.set_value(best_prompt.text)
