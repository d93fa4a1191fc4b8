"""What one attempt at one pair spends, and what the pair's failed attempts spent before it.

A pair that fails (its row says ``failed: ...``; the same command retries it) keeps what it
spent: its row, ``run.json`` and the run's totals count the failed attempt's answer-model
evaluations, computed answers and advisor calls and dollars, and the store keeps them
(``AnswerStore.keep_failed_spending``). A retry starts where the failed attempts left off:

* the answers they paid for are charged to the pair's budget at once, and are free when
  asked again (the evaluator counts them as paid), so the budget covers all attempts
  together and an honest retry that asks the same requests again ends as an uninterrupted
  run would;
* their advisor calls and dollars are charged to the run's advisor budget at once, and
  asking one of their requests again is free, each once (``AdvisorSession.prepay``).

A killed attempt (SIGKILL, Ctrl-C, a dead endpoint) records nothing here: it is resumed
from the cache with a fresh budget, and makes the same decisions as an uninterrupted run.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from optimize.advisor_session import AdvisorSession
from optimize.answer_store import AnswerStore, RunLease
from optimize.budget import Budget
from optimize.evaluator import Evaluator, paid_keys
from prompt_opt_api import Advisor, AdvisorCharges


@dataclass(frozen=True)
class PairSpending:
    """What attempts of one pair spent (for failed attempts: kept in the store, as JSON).

    Attributes:
        answer_keys: The answers charged to the pair's budget (one evaluation each).
        engine_evaluations: The engine's own scoring (the baseline on val, the test split).
        model_calls: Answers the model computed.
        cache_hits: Answers served from the store.
        advisor_calls: Calls charged to the run's advisor budget (cached replies included).
        advisor_cost_usd: Dollars charged to it.
        advisor_keys: The advisor requests charged, one per call.
    """

    answer_keys: tuple[str, ...] = ()
    engine_evaluations: int = 0
    model_calls: int = 0
    cache_hits: int = 0
    advisor_calls: int = 0
    advisor_cost_usd: float = 0.0
    advisor_keys: tuple[str, ...] = ()

    @property
    def evaluations(self) -> int:
        """Answer-model evaluations, the pair's budget's and the engine's."""
        return len(self.answer_keys) + self.engine_evaluations

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> PairSpending:
        if not data:
            return cls()
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in known}
        return cls(**values)


class PairMeter:
    """One attempt at one pair: its budgets (the failed attempts' answers already charged), the
    evaluators it scored with, and the advisor's charges since it began.

    Args:
        prior: What the pair's failed attempts spent.
        max_evaluations: The pair's budget (the optimizer's; None: no limit).
        advisor: The run's advisor (an ``AdvisorSession`` is charged ``prior``'s calls), or None.
    """

    def __init__(self, prior: PairSpending, max_evaluations: int | None, advisor: Advisor | None) -> None:
        self.prior = prior
        self.budget = Budget(max_evaluations, used=len(prior.answer_keys))
        self.engine_budget = Budget(None)
        self._advisor = advisor
        self._session = advisor if isinstance(advisor, AdvisorSession) else None
        if self._session is not None:
            self._session.prepay(prior.advisor_keys, prior.advisor_calls, prior.advisor_cost_usd)
        self._keys_at_start = len(self._session.charged_keys()) if self._session is not None else 0
        self._charges_at_start = self._charges()
        self._scorers: list[Evaluator] = []
        self._optimizers: list[Evaluator] = []

    @classmethod
    def start(cls, store: AnswerStore, run_id: str, pair: str, max_evaluations: int | None,
              advisor: Advisor | None) -> PairMeter:
        """The meter for a new attempt at ``pair``, with what its failed attempts spent."""
        return cls(PairSpending.from_json(store.failed_spending(run_id, pair)), max_evaluations, advisor)

    @property
    def paid_keys(self) -> tuple[str, ...]:
        """Answers the failed attempts paid for: the optimizer's evaluator takes them as paid."""
        return self.prior.answer_keys

    def watch(self, evaluator: Evaluator, optimizer: bool = False) -> Evaluator:
        """Count ``evaluator``'s answers in this attempt (``optimizer``: it charges the pair's budget)."""
        self._scorers.append(evaluator)
        if optimizer:
            self._optimizers.append(evaluator)
        return evaluator

    def _charges(self) -> AdvisorCharges:
        return self._advisor.charges() if self._advisor is not None else AdvisorCharges()

    def this_attempt(self) -> dict[str, int]:
        """This attempt's counters for the run's totals: answers computed, served, evaluations charged."""
        return {"model_calls": sum(e.model_calls for e in self._scorers),
                "cache_hits": sum(e.cache_hits for e in self._scorers),
                "evaluations": self.budget.used - len(self.prior.answer_keys) + self.engine_budget.used}

    def spent(self) -> PairSpending:
        """What the pair spent over all its attempts so far, this one included."""
        keys = dict.fromkeys(self.prior.answer_keys)
        for evaluator in self._optimizers:
            keys.update(dict.fromkeys(sorted(paid_keys(evaluator))))
        now, start, attempt = self._charges(), self._charges_at_start, self.this_attempt()
        new_advisor_keys = self._session.charged_keys()[self._keys_at_start:] if self._session is not None else ()
        return PairSpending(
            answer_keys=tuple(keys),
            engine_evaluations=self.prior.engine_evaluations + self.engine_budget.used,
            model_calls=self.prior.model_calls + attempt["model_calls"],
            cache_hits=self.prior.cache_hits + attempt["cache_hits"],
            advisor_calls=self.prior.advisor_calls + now.calls - start.calls,
            advisor_cost_usd=self.prior.advisor_cost_usd + now.usd - start.usd,
            advisor_keys=(*self.prior.advisor_keys, *new_advisor_keys),
        )

    def row_totals(self) -> dict[str, Any]:
        """The pair's cost columns over all its attempts: evaluations, advisor calls and dollars."""
        spent = self.spent()
        return {"answer_model_evaluations": spent.evaluations, "advisor_calls": spent.advisor_calls,
                "advisor_cost_usd": spent.advisor_cost_usd}  # unrounded: a resume re-charges it

    def failed(self, store: AnswerStore, run_id: str, pair: str, lease: RunLease | None,
               totals: dict[str, int]) -> dict[str, Any]:
        """Record this attempt as failed: what the pair spent is kept in the store and this
        attempt's counters go into the run's ``totals``; the failed row's cost columns."""
        store.keep_failed_spending(run_id, pair, self.spent().to_json(), lease=lease)
        for key, n in self.this_attempt().items():
            totals[key] += n
        return self.row_totals()
