"""Single flight per answer key: while one thread computes an answer, a thread that wants the
same key waits for it instead of asking the model again.

The evaluator claims the keys it is about to compute; keys another thread already claimed
come back as flights to wait for. The owner publishes each answer after the store has it
and then releases the key, so a thread that claims a key after its release finds the
answer in the store. A flight whose owner failed (a model error, the evaluator closed)
ends without an answer: its waiters claim the key again and compute it themselves.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping


class Flight:
    """One key being computed by one thread; others wait on it."""

    __slots__ = ("_done", "answer")

    def __init__(self) -> None:
        self._done = threading.Event()
        self.answer: str | None = None

    def wait(self) -> str | None:
        """The answer, or None when the owner failed to compute it."""
        self._done.wait()
        return self.answer

    def _end(self, answer: str | None) -> None:
        self.answer = answer
        self._done.set()


class SingleFlight:
    """The keys being computed right now, each by one thread."""

    __slots__ = ("_lock", "_flights")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flights: dict[str, Flight] = {}

    def claim(self, keys: Iterable[str]) -> tuple[list[str], dict[str, Flight]]:
        """(the keys this thread now owns and must compute or ``release``, the keys another
        thread is computing with their flights)."""
        mine: list[str] = []
        theirs: dict[str, Flight] = {}
        with self._lock:
            for key in dict.fromkeys(keys):
                flight = self._flights.get(key)
                if flight is None:
                    self._flights[key] = Flight()
                    mine.append(key)
                else:
                    theirs[key] = flight
        return mine, theirs

    def release(self, keys: Iterable[str], answers: Mapping[str, str]) -> None:
        """End the flights of ``keys`` (owned by this thread): with their answer where ``answers``
        has one (already in the store), else without (the waiters compute it themselves)."""
        with self._lock:
            ended = [(self._flights.pop(key), answers.get(key)) for key in keys if key in self._flights]
        for flight, answer in ended:
            flight._end(answer)
