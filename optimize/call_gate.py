"""A gate that the engine closes when ``optimize()`` returns: later calls are refused, calls in
flight are waited for (so what they spent is counted before the totals are read).

The evaluator and the advisor view an optimizer gets each hold one: a thread a plugin leaves
behind gets no answer and no reply once its pair is over.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class CallGate:
    """Counts calls in flight and refuses new ones once closed.

    Args:
        refusal: Builds the exception a call gets after ``close()``.
    """

    __slots__ = ("_refusal", "_state", "_in_flight", "_closed")

    def __init__(self, refusal: type[Exception], message: str) -> None:
        self._refusal = lambda: refusal(message)
        self._state = threading.Condition()
        self._in_flight = 0
        self._closed = False

    @contextmanager
    def call(self) -> Iterator[None]:
        """One call through the gate: refused when closed, else counted in flight until it ends."""
        with self._state:
            self.refuse_if_closed()
            self._in_flight += 1
        try:
            yield
        finally:
            with self._state:
                self._in_flight -= 1
                self._state.notify_all()

    def refuse_if_closed(self) -> None:
        """Raise the gate's refusal if it is closed (a call in flight checks before each costly step)."""
        if self._closed:
            raise self._refusal()

    def close(self) -> None:
        """Refuse every later call; return once no call is in flight."""
        with self._state:
            self._closed = True
            while self._in_flight:
                self._state.wait()
