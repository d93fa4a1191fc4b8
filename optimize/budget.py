"""The pair's answer-model budget: charged only by the engine, read-only to optimizers."""

from __future__ import annotations

from prompt_opt_api import BudgetExhausted


class Budget:
    """Answer-model evaluations allowed for one pair; only the engine charges it.

    One unit is one (prompt, example) scored, whether computed or served from cache:
    counting logical evaluations keeps a resumed run's decisions identical to an
    uninterrupted run's.

    Args:
        max_evaluations: The limit; None for no limit.
        used: Evaluations already charged (a failed attempt's, on retry); may exceed the limit.
    """

    __slots__ = ("_limit", "_used")

    def __init__(self, max_evaluations: int | None = None, used: int = 0) -> None:
        self._limit = max_evaluations
        self._used = used

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


class ReadOnlyBudget:
    """Read-only face of a ``Budget`` (what optimizers see)."""

    __slots__ = ("_budget",)

    def __init__(self, budget: Budget) -> None:
        self._budget = budget

    limit = property(lambda self: self._budget.limit)
    used = property(lambda self: self._budget.used)
    remaining = property(lambda self: self._budget.remaining)

    def __repr__(self) -> str:
        return f"BudgetView(used={self.used}, limit={self.limit})"
