"""The optimizer contract, and the sealed evaluator every optimizer receives."""

from __future__ import annotations

import copy
import inspect
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from prompt_opt_api.data import Example, Pair, Prompt, Score, Trial, baseline_prompt

if TYPE_CHECKING:
    from prompt_opt_api.advisor import Advisor


class BudgetView(Protocol):
    """Read-only view of a pair's answer-model budget (one unit = one prompt × example)."""

    @property
    def limit(self) -> int | None:
        """The pair's limit; None for unlimited."""

    @property
    def used(self) -> int:
        """Evaluations charged so far (cached or not)."""

    @property
    def remaining(self) -> int | None:
        """``limit - used``; None for unlimited."""


class PromptEvaluator(Protocol):
    """What an optimizer gets to score prompts with: charged, cached, sealed.

    * ``score(prompt, examples)`` (and ``race``, built on it) is the only way to an
      answer. It charges the budget one evaluation per (prompt, example) not paid for
      before in this pair, *before* answering (answers cached by earlier runs are
      charged too, so a resumed run decides exactly as an uninterrupted one), and raises
      ``BudgetExhausted`` without scoring anything when the budget cannot pay.
    * Only examples of the pair's train and val splits may be scored; anything else
      raises ``HeldOutAccessError``.
    * A prompt whose text is over ``MAX_PROMPT_CHARS`` characters (or a provenance field
      over ``MAX_PROVENANCE_CHARS``) raises ``PromptTooLong`` before anything is charged.
    * Threads may share it: a request another thread is answering right now is waited for,
      never sent twice. Once ``optimize()`` returns, every call raises.
    * Every score is recorded as it is made, labelled ``val`` only when ``examples`` is
      the whole val split (each example once). Scores on part of val (``val-subset``),
      on train or on a mix never win selection: to compete, score on ``pair.val``.
    * ``budget`` is read-only.
    """

    @property
    def budget(self) -> BudgetView:
        """The pair's budget, read-only."""

    @property
    def model_name(self) -> str:
        """The answer model's display name (meta-prompts tell the advisor what it writes for)."""

    @property
    def retrieval_signatures(self) -> tuple[str, ...]:
        """The page similarities a ``DemoRetrieval`` may use with this answer model
        (``demo_retrieval.SIGNATURES``; comparing OCR text needs a model that reads text)."""

    @property
    def cuts_demo_text(self) -> bool:
        """Whether the answer model cuts demo pages around their answers (``Prompt.demo_chars``);
        a prompt with a cut is refused for one that does not."""

    def score(self, prompt: Prompt, examples: Sequence[Example]) -> Score:
        """Mean CER and exact match of ``prompt`` on ``examples``, with per-example answers."""

    def race(self, prompts: Sequence[Prompt], examples: Sequence[Example], incumbent: Score | None = None,
             minibatch: int = 4, confidence: float = 0.95) -> list[Score | None]:
        """Score ``prompts`` with racing: a minibatch first, the full ``examples`` only for
        those not clearly worse than the best so far; None for a dropped prompt."""


class Optimizer(ABC):
    """Searches for the prompt with the lowest CER for one pair.

    Contract:
        * ``optimize(pair, evaluator, advisor)`` has exactly these parameters, in this
          order, in every plugin (``signature_problem``; the configuration check and a
          test hold it); options go to ``__init__``, from Hydra.
        * ``pair.test`` is empty: the held-out split is scored only by the run loop.
        * Score only through ``evaluator.score`` (see ``PromptEvaluator``); never call a
          model directly.
        * The run loop selects, among the scores the evaluator recorded on the **full**
          val split, the lowest CER (the earliest wins a tie). What ``optimize`` returns
          is informational (logs, tests); a trial it reports but never scored on full
          val cannot win.
        * ``BudgetExhausted`` may propagate; scores already made are kept.
        * ``advisor`` may be None (``advisor=none``); plugins that need one raise ValueError
          before any work.
        * Keep no global state: wrap library globals (DSPy/TextGrad settings) inside
          the call, so two runs in one process cannot leak into each other.
        * Prompts are values: build new ``Prompt`` objects, never mutate one.
        * Say who wrote each prompt (``Prompt.provenance``): an advisor-written kind names
          the advisor member that wrote it; a prompt without one is credited to the
          optimizer (the engine checks both; under a panel, a member keeps the credit only
          for text that came out of its own replies).
        * Keep nothing on ``self`` from one pair to the next: what one pair learned is
          returned or logged, never read by the next.

    Attributes:
        name: Short name written to results (``optimizer`` column).
        uses_advisor: Whether ``optimize`` needs an advisor. One that does not writes its
            results under advisor ``none`` and no advisor is started for it.
        starting_prompts: Prompts to start from besides the baseline (``starting_from``;
            ``chain`` passes the previous step's best this way).
    """

    name: str = "optimizer"
    uses_advisor: bool = False
    starting_prompts: tuple[Prompt, ...] = ()

    def starting_from(self, prompts: Sequence[Prompt]) -> Optimizer:
        """A copy of this optimizer that also starts from ``prompts``."""
        clone = copy.copy(self)
        clone.starting_prompts = tuple(prompts)
        return clone

    @abstractmethod
    def optimize(self, pair: Pair, evaluator: PromptEvaluator, advisor: Advisor | None) -> list[Trial]:
        """Propose and score prompts for ``pair``; return every trial made."""

    # -- the run plan (``plan=true``): estimates only, nothing is scored or asked -----
    def planned_evaluations(self, pair: Pair, budget: int | None) -> int | None:
        """About how many answer-model evaluations ``optimize`` would spend on ``pair`` (test
        empty) if its budget allowed: an upper estimate; the plan caps it at ``budget``.

        Default: the budget itself (None: unknown, unbounded).
        """
        return budget

    def known_prompts(self, pair: Pair) -> list[Prompt]:
        """Prompts this optimizer will score on ``pair.val`` whatever happens, in order (the
        plan looks their answers up in the cache). Default: the baseline and the starting prompts."""
        return [baseline_prompt(), *self.starting_prompts]

    def planned_advisor_calls(self, pairs: Sequence[Pair], members: int = 1) -> int | None:
        """At most how many advisor calls a run over ``pairs`` makes (``members``: advisors in a
        panel). Default: none without an advisor, unknown (None) with one."""
        return None if self.uses_advisor else 0


def signature_problem(cls: type) -> str | None:
    """What breaks the frozen ``optimize(self, pair, evaluator, advisor)`` in ``cls``, or None.

    Parameter names, order and kinds are compared, not annotations: a module with or without
    ``from __future__ import annotations`` states the same contract (defaults are allowed).
    """
    expected, actual = _bare(Optimizer.optimize), _bare(getattr(cls, "optimize", None))
    if actual == expected:
        return None
    contract = f"every optimizer's optimize is {expected} (prompt_opt_api.Optimizer)"
    if actual is None:
        return f"{cls.__name__}.optimize cannot be inspected; {contract}"
    missing = [name for name in expected.parameters if name not in actual.parameters]
    if missing:
        return (f"{cls.__name__}.optimize{actual} lacks the parameter{'s' if len(missing) > 1 else ''} "
                f"{', '.join(missing)}; {contract}")
    return f"{cls.__name__}.optimize{actual} changes the contract: {contract}, in this order"


def _bare(function: object) -> inspect.Signature | None:
    """``function``'s signature with names and kinds only (no annotations, no defaults)."""
    try:
        signature = inspect.signature(function)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    parameters = [p.replace(annotation=inspect.Parameter.empty, default=inspect.Parameter.empty)
                  for p in signature.parameters.values()]
    return signature.replace(parameters=parameters, return_annotation=inspect.Signature.empty)
