"""``optimizer=dspy``: DSPy's MIPROv2 or GEPA searching our prompt, on our engine.

The answer model becomes a DSPy program: one ``dspy.Predict`` whose signature's
instructions are the prompt, run by a DSPy LM that answers through the sealed evaluator
(every call charged to the pair's budget and served from our cache); it reads the
instructions, the demos and the document asked about from the messages DSPy formats and
asks the answer model exactly what the exported ``Prompt`` asks (``{question}`` then the
instructions, demos as our demos), so what DSPy optimized is what is deployed. The
prompt and reflection model is the advisor behind a second DSPy LM over our advisor
client (reply cache, budget and retries hold).

DSPy's own scores are on minibatches or single examples: in our trials they are
``val-subset`` scores, which never win. When DSPy finishes (or the budget it may use is
spent, with ``reserve`` evaluations kept for this) the instructions it returns, and the
best it tried, are exported as plain prompts and scored on full val by our evaluator,
the selection rule. DSPy's global settings are confined to the call (``dspy.context``).
"""

from __future__ import annotations

import logging
import re
import textwrap
from collections.abc import Sequence
from typing import Any

from optimizers import dspy_prompts as text
from optimizers.mistakes import classify_mistake
from optimizers.pool_optimizer import PoolOptimizer
from prompt_opt_api import Advisor, Example, Pair, Prompt, PromptEvaluator, Provenance, Trial
from prompt_opt_api.errors import AdvisorError, BudgetExhausted

log = logging.getLogger(__name__)
QUESTION = "{question}"
_FIELD = r"\[\[ ## {name} ## \]\]\n(.*?)(?=\n\n\[\[ ## |\n\[\[ ## |\Z)"


class DspyBudgetSpent(RuntimeError):
    """The part of the pair's budget DSPy may use is spent (the rest scores its result)."""


def instructions_of(prompt_text: str) -> str:
    """DSPy instructions for one of our prompts: the prompt without its ``{question}``."""
    return " ".join(prompt_text.replace(QUESTION, " ").split()) or text.SIGNATURE_DOC


def prompt_of(instructions: str, demos: Sequence[Example] = (), provenance: Provenance | None = None) -> Prompt:
    """The plain prompt the answer model is asked with for DSPy ``instructions``."""
    return Prompt(f"{QUESTION} {' '.join(instructions.split())}", demos=tuple(demos), provenance=provenance)


def _field(content: str, name: str) -> str | None:
    match = re.search(_FIELD.format(name=re.escape(name)), content, re.DOTALL)
    return match.group(1).strip() if match else None


def _objective(system: str) -> str:
    """The signature's instructions, from ChatAdapter's system message."""
    head, sep, objective = system.partition("your objective is:")
    if not sep:
        raise ValueError("dspy: no instructions in the system message (only ChatAdapter is supported)")
    return textwrap.dedent(objective.lstrip("\n")).strip() if "\n" in objective else objective.strip()


class EvaluatorBackedLM:
    """Builds the DSPy LM that answers through our evaluator (DSPy imported lazily)."""

    def __init__(self, evaluator: PromptEvaluator, examples: dict[str, Example], stop_at_remaining: int,
                 provenance: Provenance) -> None:
        self.evaluator = evaluator
        self.examples = examples  # document_id -> example (train and val only: the evaluator's own)
        self.stop_at_remaining = stop_at_remaining
        self.provenance = provenance
        self.seen: dict[str, Prompt] = {}  # every prompt DSPy asked with, by text + demos
        self.cers: dict[tuple[str, str], tuple[float, str]] = {}  # (document, answer) -> (CER, raw answer)
        self.stopped = False  # DSPy's share of the budget ran out
        self.error: Exception | None = None  # the first error of the answer model inside DSPy

    def answer(self, messages: list[dict[str, Any]]) -> str:
        system = next((m["content"] for m in messages if m["role"] == "system"), "")
        instructions = _objective(system)
        demos: list[Example] = []
        turns = [m for m in messages if m["role"] != "system"]
        for user, reply in zip(turns[:-1:2], turns[1::2]):
            doc = _field(user["content"], "document_id")
            if doc in self.examples and _field(reply["content"], "answer") is not None:
                demos.append(self.examples[doc])
        doc = _field(turns[-1]["content"], "document_id")
        if doc not in self.examples:
            raise ValueError(f"dspy asked about an unknown document {doc!r}")
        if self.error is not None:
            raise self.error  # DSPy catches errors per example and goes on: fail as fast each time
        remaining = self.evaluator.budget.remaining
        if remaining is not None and remaining <= self.stop_at_remaining:
            # DSPy may catch this per example and go on: every later call fails as fast
            self.stopped = True
            raise DspyBudgetSpent(f"dspy's share of the budget is spent ({remaining} evaluations kept)")
        prompt = prompt_of(instructions, demos, self.provenance)
        self.seen.setdefault(prompt.text + "|" + ",".join(d.source_row for d in demos), prompt)
        try:
            result = self.evaluator.score(prompt, [self.examples[doc]]).results[0]
        except Exception as err:
            # DSPy would log it, score 0 and go on asking: keep it, re-raised after DSPy returns
            # (a dead endpoint stops the run, a model error fails the pair, a spent budget ends the search)
            self.error = err
            raise
        # DSPy's metric reads our CER for this answer: one metric, computed by the engine
        self.cers[(doc, result.prediction.strip())] = (result.cer, result.prediction)
        return f"[[ ## answer ## ]]\n{result.prediction}\n\n[[ ## completed ## ]]"


def scripted_lm(respond: Any, model: str) -> Any:
    """A DSPy LM whose reply text comes from ``respond(messages)`` (no provider, no DSPy cache)."""
    from dspy.clients.engines.dummy_engine import DummyEngine
    from dspy.lm15 import Message, Response, TextPart, Usage
    from dspy.utils.dummies import DummyLM

    class Engine(DummyEngine):
        def _complete_messages(self, messages):
            output = respond([{"role": m["role"], "content": m.get("content") or ""} for m in messages])
            return Response(id=None, model=model, message=Message.assistant([TextPart(output)]),
                            finish_reason="stop", usage=Usage(input_tokens=0, output_tokens=0, total_tokens=0))

    class ScriptedLM(DummyLM):
        def __init__(self):
            super().__init__(answers=[])
            self.model = model
            self._bind()

        def _bind(self):
            from dspy.clients.engines.dummy_engine import AsyncDummyEngine

            self._engine_spec = Engine(self)
            self._async_engine_spec = AsyncDummyEngine(self._engine_spec)
            self._cache_responses = False

        def copy(self, **kwargs):
            copied = super().copy(**kwargs)
            copied._bind()
            return copied

    return ScriptedLM()


def advisor_lm(advisor: Advisor, temperature: float | None) -> Any:
    """DSPy's prompt / reflection model: our advisor client (cached, budgeted, retried)."""
    sample = {"n": 0}

    def respond(messages: list[dict[str, Any]]) -> str:
        sample["n"] += 1  # DSPy may ask the same thing twice for diversity: a new sample each time
        return advisor.complete(messages, temperature=temperature, sample=sample["n"])

    return scripted_lm(respond, f"advisor/{advisor.name}")


class DspyOptimizer(PoolOptimizer):
    """DSPy MIPROv2 (instructions, optionally demos) or GEPA (reflective evolution) on our engine.

    Args:
        method: ``mipro`` or ``gepa``.
        num_candidates: MIPROv2: instruction (and demo-set) candidates proposed.
        num_trials: MIPROv2: Bayesian-optimization trials.
        minibatch_size: MIPROv2: val examples per trial (``None``: full val each trial).
        max_labeled_demos: MIPROv2: train demos it may add (0: instructions only).
        max_metric_calls: GEPA: metric calls (answers) it may spend.
        reflection_minibatch_size: GEPA: train examples shown per reflection.
        reserve: Evaluations kept from DSPy to score its result on full val (None: 2 x val).
        temperature: Advisor temperature.
        seed: DSPy's random seed.
        manual_candidates: Hand-written prompts scored beside the baseline; the best is DSPy's start.

    Why DSPy stopped early on a pair (a spent budget, a failed advisor call) is logged
    (``dspy-<method> stopped early``); nothing of one pair is kept for the next.
    """

    name = "dspy"
    uses_advisor = True

    def __init__(self, method: str = "mipro", num_candidates: int = 3, num_trials: int = 4,
                 minibatch_size: int | None = None, max_labeled_demos: int = 0, max_metric_calls: int = 40,
                 reflection_minibatch_size: int = 3, reserve: int | None = None, temperature: float = 0.7,
                 seed: int = 0, manual_candidates: Sequence[str] = ()) -> None:
        if method not in ("mipro", "gepa"):
            raise ValueError(f"optimizer=dspy: method must be 'mipro' or 'gepa', got {method!r}")
        super().__init__(manual_candidates)
        self.method = method
        self.name = f"dspy-{method}"
        self.num_candidates = num_candidates
        self.num_trials = num_trials
        self.minibatch_size = minibatch_size
        self.max_labeled_demos = max_labeled_demos
        self.max_metric_calls = max_metric_calls
        self.reflection_minibatch_size = reflection_minibatch_size
        self.reserve = reserve
        self.temperature = temperature
        self.seed = seed

    def optimize(self, pair: Pair, evaluator: PromptEvaluator, advisor: Advisor | None) -> list[Trial]:
        advisor, pool, worth_it = self.start(pair, evaluator, advisor, needs_train=True)
        if not worth_it:
            return pool.trials
        writer = advisor.members()[0]
        reserve = self.reserve if self.reserve is not None else 2 * len(pair.val)
        docs = {f"doc{i}": ex for i, ex in enumerate((*pair.train, *pair.val))}
        written = Provenance(kind="dspy", author=writer.name, detail=self.method)
        task_lm = EvaluatorBackedLM(evaluator, docs, reserve, written)
        result, stopped_because = self._search(pair, pool.best[0], docs, task_lm, writer)
        if stopped_because is not None:
            log.info("pair %r dspy-%s stopped early (%s); scoring the best it tried", pair.key, self.method,
                     stopped_because)
        finals = []
        if result is not None:
            predictor = result.predictors()[0]
            demo_examples = [docs[d["document_id"]] for d in predictor.demos if d.get("document_id") in docs]
            finals.append(prompt_of(predictor.signature.instructions, demo_examples, written))
        # what DSPy tried, newest first (DSPy's choice first): its val scores were partial
        finals.extend(reversed(list(task_lm.seen.values())))
        for prompt in finals:
            if pool.budget_spent:
                break
            pool.add([prompt], step=1)
        return pool.trials

    def _search(self, pair: Pair, start: Prompt, docs: dict[str, Example], task_lm: EvaluatorBackedLM,
                writer: Advisor) -> tuple[Any, str | None]:
        """Run DSPy from ``start``: its result (None when it stopped early) and why it stopped early.

        Raises what the answer model raised inside DSPy (a dead endpoint, a model error): not
        DSPy's to swallow, the run loop fails the pair or stops the run.
        """
        import dspy  # lazy: heavy, and only this plugin needs it

        class ReadField(dspy.Signature):
            document_id: str = dspy.InputField(desc=text.DOCUMENT_FIELD)
            question: str = dspy.InputField(desc=text.QUESTION_FIELD)
            answer: str = dspy.OutputField(desc=text.ANSWER_FIELD)

        ids = {ex.source_row: doc for doc, ex in docs.items()}

        def dspy_examples(examples: Sequence[Example]) -> list:
            return [dspy.Example(document_id=ids[ex.source_row], question=ex.question, answer=ex.answer)
                    .with_inputs("document_id", "question") for ex in examples]

        student = dspy.Predict(ReadField.with_instructions(instructions_of(start.text)))
        lm = scripted_lm(lambda messages: task_lm.answer(messages), "answer-model/evaluator")
        result, stopped_because = None, None
        try:
            with dspy.context(lm=lm, adapter=dspy.ChatAdapter(use_native_function_calling=False)):
                result = self._compile(dspy, student, dspy_examples(pair.train), dspy_examples(pair.val), lm,
                                       advisor_lm(writer, self.temperature), task_lm)
        except (DspyBudgetSpent, BudgetExhausted, AdvisorError) as err:  # AdvisorError: budget too
            stopped_because = f"{type(err).__name__}: {err}"
        except Exception as err:  # noqa: BLE001 - DSPy wraps our errors in its own; keep what was found
            if task_lm.error is not None and not isinstance(task_lm.error, BudgetExhausted):
                raise task_lm.error from err
            if not (task_lm.stopped or task_lm.error is not None
                    or isinstance(err.__cause__, (DspyBudgetSpent, BudgetExhausted, AdvisorError))):
                raise
            stopped_because = f"{type(err).__name__}: {err}"
        if task_lm.error is not None and not isinstance(task_lm.error, BudgetExhausted):
            raise task_lm.error
        if isinstance(task_lm.error, BudgetExhausted):
            stopped_because = stopped_because or f"BudgetExhausted: {task_lm.error}"
        if task_lm.stopped:
            stopped_because = stopped_because or "DspyBudgetSpent: its share of the answer-model budget ran out"
        return result, stopped_because

    def _compile(self, dspy: Any, student: Any, trainset: list, valset: list, lm: Any, reflection: Any,
                 task_lm: EvaluatorBackedLM) -> Any:
        def outcome(gold: Any, pred: Any) -> tuple[float, str]:
            answered = str(getattr(pred, "answer", "") or "").strip()
            cer, prediction = task_lm.cers.get((gold.document_id, answered), (1.0, answered))
            return max(0.0, 1.0 - min(cer, 1.0)), prediction  # DSPy maximizes: 1 - CER clipped at 1

        if self.method == "mipro":
            def metric(gold: Any, pred: Any, trace: Any = None) -> float:
                return outcome(gold, pred)[0]

            mipro = dspy.MIPROv2(metric=metric, prompt_model=reflection, task_model=lm, auto=None,
                                 num_candidates=self.num_candidates, max_bootstrapped_demos=0,
                                 max_labeled_demos=self.max_labeled_demos, num_threads=1, seed=self.seed,
                                 verbose=False, track_stats=False)
            minibatch = self.minibatch_size is not None and self.minibatch_size < len(valset)
            return mipro.compile(student, trainset=trainset, valset=valset, num_trials=self.num_trials,
                                 minibatch=minibatch, minibatch_size=self.minibatch_size or len(valset),
                                 max_labeled_demos=self.max_labeled_demos, max_bootstrapped_demos=0,
                                 data_aware_proposer=False, program_aware_proposer=False)

        def feedback_metric(gold: Any, pred: Any, trace: Any = None, pred_name: Any = None,
                            pred_trace: Any = None) -> Any:
            score, prediction = outcome(gold, pred)
            if score == 1.0:
                feedback = text.FEEDBACK_EXACT
            else:
                feedback = text.FEEDBACK_WRONG.format(error_class=classify_mistake(gold.answer, prediction),
                                                      expected=gold.answer, answered=prediction[:120],
                                                      cer=1.0 - score)
            return dspy.Prediction(score=score, feedback=feedback)

        gepa = dspy.GEPA(metric=feedback_metric, max_metric_calls=self.max_metric_calls, reflection_lm=reflection,
                         reflection_minibatch_size=self.reflection_minibatch_size, num_threads=1,
                         use_merge=False, track_stats=False, seed=self.seed)
        return gepa.compile(student, trainset=trainset, valset=valset)
