"""The engine's wrapper around the configured advisor: reply cache, run budget, accounting.

Like the evaluator for answer models, the advisor the optimizers receive is wrapped:
every reply is cached in the store (keyed by the advisor's identity, the messages,
temperature, max tokens and sample index), so a killed run resumes with the same
proposals and a re-run pays nothing twice; the run's advisor budget (calls and dollars)
is checked before each call. Budgets count *logical* calls, cached or not, with the
dollars each reply cost when it was made: a resumed run makes the same decisions as an
uninterrupted one.

Optimizers never get the session itself: they get an ``AdvisorView`` (ask, members, name,
whether it reads images, a copy of usage), the way they get a read-only budget. The
session's budget fields, its charging method and the client it wraps are the engine's. The
run loop closes the view when ``optimize()`` returns (a later call raises ``AdvisorClosed``
before any advisor call; a call in flight is waited for, so it is counted), and the view
records the replies it handed out, by member, for the panel-credit check
(``optimize.attribution.ReplyLedger``).

What a failed attempt of a pair charged is charged again when the pair is retried
(``prepay``): its calls and dollars at once, and asking one of its requests again is then
free (each once), so an honest retry ends where an uninterrupted run would.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from optimize.attribution import ReplyLedger
from optimize.call_gate import CallGate
from prompt_opt_api import (
    Advisor,
    AdvisorBudgetExhausted,
    AdvisorCharges,
    AdvisorError,
    AdvisorReply,
    AdvisorUsage,
    DerivedDataCache,
    Message,
    cache_key,
)


class AdvisorSession(Advisor):
    """An ``Advisor`` that caches, budgets and counts the one it wraps.

    Args:
        inner: The configured advisor (e.g. ``LiteLLMAdvisor``).
        cache: The run's store (``get_blob``/``put_blob``).
        max_calls: Advisor calls allowed in the run (cached ones count); None: no limit.
        max_usd: Dollars allowed in the run (cached replies count at their original cost).
        default_temperature: The temperature a call without one is cached under.
        call_log: A JSONL file getting one line per call (cached or not, failed too):
            time, sample, temperature, tokens, dollars, seconds, and the reply's cache key
            (never the messages, never a key).
        budget_owner: For a panel member: the panel's session, whose budget every call
            is charged to and whose usage adds up the members' (the member keeps its own
            counts too, so each advisor's share is known).

    A panel (``advisor=panel``) gets one session per member from ``members()``: replies
    are cached under each member's own identity, the run's budget is shared.
    """

    def __init__(self, inner: Advisor, cache: DerivedDataCache, max_calls: int | None = None,
                 max_usd: float | None = None, default_temperature: float | None = None,
                 call_log: Path | None = None, budget_owner: AdvisorSession | None = None) -> None:
        super().__init__()
        self.inner = inner
        self.name = inner.name
        self.accepts_images = inner.accepts_images
        self.max_calls = max_calls
        self.max_usd = max_usd
        self.default_temperature = default_temperature if default_temperature is not None else getattr(
            inner, "temperature", None)
        self._cache = cache
        self._lock = threading.Lock()
        self.logical_calls = 0  # charged to the budget: cached, fresh and failed calls alike
        self.logical_usd = 0.0
        self._call_log = call_log
        self._owner = budget_owner
        self._members: tuple[Advisor, ...] | None = None
        self._prepaid: Counter[str] = Counter()  # requests a failed attempt paid for (the panel's session)
        self._charged_keys: list[str] = []  # every request charged, in order (the panel's session)
        if call_log is not None and budget_owner is None:
            call_log.parent.mkdir(parents=True, exist_ok=True)
            call_log.write_text("")  # this attempt's calls; cached ones show as such

    def _log(self, key: str, sample: int, temperature: float | None, started: float, reply: AdvisorReply | None,
             cached: bool) -> None:
        if self._call_log is None:
            return
        record = {"time": round(time.time(), 3), "advisor": self.name, "key": key[:16], "sample": sample,
                  "temperature": self.default_temperature if temperature is None else temperature,
                  "cached": cached, "failed": reply is None, "seconds": round(time.monotonic() - started, 3),
                  "prompt_tokens": reply.prompt_tokens if reply else 0,
                  "completion_tokens": reply.completion_tokens if reply else 0,
                  "cost_usd": reply.cost_usd if reply else 0.0}
        with (self._owner or self)._lock, self._call_log.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")

    # -- budget ----------------------------------------------------------------
    def _charge(self, key: str) -> bool:
        """Charge one call of request ``key``; True when a failed attempt had paid for it (free now)."""
        if self._owner is not None:  # a panel member: the run's budget is the panel's
            prepaid = self._owner._charge(key)
            if not prepaid:
                with self._lock:
                    self.logical_calls += 1
            return prepaid
        with self._lock:
            if self._prepaid[key] > 0:
                self._prepaid[key] -= 1
                return True
            if self.max_calls is not None and self.logical_calls + 1 > self.max_calls:
                raise AdvisorBudgetExhausted(f"advisor budget spent: {self.logical_calls} of {self.max_calls} calls")
            if self.max_usd is not None and self.logical_usd >= self.max_usd:
                raise AdvisorBudgetExhausted(f"advisor budget spent: ${self.logical_usd:.4f} of ${self.max_usd:.4f}")
            self.logical_calls += 1
            self._charged_keys.append(key)
            return False

    def prepay(self, keys: Sequence[str], calls: int, usd: float) -> None:
        """Charge what failed attempts of the pair about to be retried spent: ``calls`` and ``usd``
        now; asking one of their requests (``keys``) again is then free, each once (for that pair)."""
        with self._lock:
            self.logical_calls += int(calls)
            self.logical_usd += float(usd)
            self._prepaid = Counter(keys)

    def charged_keys(self) -> tuple[str, ...]:
        """Every request charged to the run's budget so far (not those a failed attempt had paid), in order."""
        with self._lock:
            return tuple(self._charged_keys)

    def charges(self) -> AdvisorCharges:
        """Logical calls and dollars charged to the run's budget (cached replies included)."""
        with self._lock:
            return AdvisorCharges(calls=self.logical_calls, usd=self.logical_usd)

    def charge_finished(self, calls: int, usd: float) -> None:
        """Count what a pair finished in an earlier attempt of this run spent (resume)."""
        with self._lock:
            self.logical_calls += int(calls)
            self.logical_usd += float(usd)

    # -- calls -----------------------------------------------------------------
    def _key(self, messages: Sequence[Message], temperature: float | None, sample: int,
             limits: dict[str, Any] | None = None) -> str:
        # stop strings and a smaller reply cap change the reply: keyed when given (only then,
        # so replies cached without them keep their keys)
        return cache_key({"advisor": self.inner.cache_identity(), "messages": list(messages),
                          "temperature": self.default_temperature if temperature is None else temperature,
                          "sample": sample, **({"limits": limits} if limits else {})})

    def members(self) -> tuple[Advisor, ...]:
        """One session per panel member (sharing this session's budget), or just this one."""
        if self._members is None:
            inner = tuple(self.inner.members())
            if len(inner) == 1 and inner[0] is self.inner:
                self._members = (self,)
            else:
                self._members = tuple(AdvisorSession(m, self._cache, call_log=self._call_log, budget_owner=self)
                                      for m in inner)
        return self._members

    def _first_member(self) -> AdvisorSession | None:
        """The member that answers when a panel is asked directly (None: not a panel)."""
        first = self.members()[0]
        return first if first is not self else None  # type: ignore[return-value]

    def _account(self, reply: AdvisorReply | None, cached: bool, prepaid: bool = False) -> None:
        """Count a reply (or a failure) here and, for a panel member, in the panel's totals
        (a reply a failed attempt had paid for adds no dollars to the budget again)."""
        for session in (self, self._owner) if self._owner is not None else (self,):
            with session._lock:
                if reply is None:
                    session.usage.failed_calls += 1
                    continue
                if not prepaid:
                    session.logical_usd += reply.cost_usd
                if cached:
                    session.usage.cached_calls += 1
                else:
                    session.usage.calls += 1
                    session.usage.prompt_tokens += reply.prompt_tokens
                    session.usage.completion_tokens += reply.completion_tokens
                    session.usage.cost_usd += reply.cost_usd

    def reply(self, messages: Sequence[Message], *, temperature: float | None = None, sample: int = 0,
              stop: Sequence[str] | None = None, max_tokens: int | None = None) -> AdvisorReply:
        first = self._first_member()
        if first is not None:
            return first.reply(messages, temperature=temperature, sample=sample, stop=stop, max_tokens=max_tokens)
        # resolved once: the key and the request name the same temperature
        temperature = self.default_temperature if temperature is None else temperature
        limits = _limits(stop, max_tokens)
        key = self._key(messages, temperature, sample, limits)
        prepaid = self._charge(key)
        return self._paid_reply(messages, temperature, sample, limits, key, prepaid)

    def _paid_reply(self, messages: Sequence[Message], temperature: float | None, sample: int,
                    limits: dict[str, Any] | None, key: str, prepaid: bool) -> AdvisorReply:
        started = time.monotonic()
        cached = self._cache.get_blob(f"advisor-reply:{key}")
        if cached is not None:
            reply = AdvisorReply(**json.loads(cached))
            self._account(reply, cached=True, prepaid=prepaid)
            self._log(key, sample, temperature, started, reply, cached=True)
            return reply
        try:
            reply = self.inner.reply(messages, temperature=temperature, sample=sample, **(limits or {}))
        except AdvisorError:
            self._account(None, cached=False, prepaid=prepaid)
            self._log(key, sample, temperature, started, None, cached=False)
            raise
        self._cache.put_blob(f"advisor-reply:{key}", json.dumps(reply.__dict__, ensure_ascii=False))
        record_timing = getattr(self._cache, "record_timing", None)  # the store: plan=true reads speeds and tokens
        if record_timing is not None:
            record_timing("advisor", self.name, 1, time.monotonic() - started, reply.prompt_tokens,
                          reply.completion_tokens)
        self._account(reply, cached=False, prepaid=prepaid)
        self._log(key, sample, temperature, started, reply, cached=False)
        return reply

    def count_unusable_reply(self) -> None:
        first = self._first_member()
        if first is not None:  # a panel asked directly: its first member answered
            first.count_unusable_reply()
            return
        for session in (self, self._owner) if self._owner is not None else (self,):
            with session._lock:
                session.usage.unusable_replies += 1

    def check_ready(self) -> None:
        self.inner.check_ready()

    def cache_identity(self) -> dict[str, object]:
        return self.inner.cache_identity()

    def close(self) -> None:
        self.inner.close()


class AdvisorClosed(RuntimeError):
    """The advisor view was used after ``optimize()`` returned: a new call is refused before any
    advisor call; a call in flight at that moment is finished and counted."""


class AdvisorView:
    """What an optimizer gets of the run's advisor: it can ask, and read, nothing more.

    Asking (``complete``, ``reply``) goes through the wrapped advisor (for the run loop:
    the ``AdvisorSession``), so every call is cached, charged and counted there.
    ``members()`` are views too; ``usage`` is a copy; ``charges()`` (the run's calls and
    dollars charged so far) is a value. There is no way from here to the budget's
    fields, to a charging method or to the client the session wraps.

    Args:
        advisor: The advisor asked (the run's session).
        replies: Where each reply handed out is recorded, by the member that wrote it.
    """

    __slots__ = ("_advisor", "_members", "_gate", "_replies")

    def __init__(self, advisor: Advisor, replies: ReplyLedger | None = None, gate: CallGate | None = None) -> None:
        self._advisor = advisor
        self._members: tuple[AdvisorView, ...] | None = None
        self._replies = replies if replies is not None else ReplyLedger()
        self._gate = gate or CallGate(AdvisorClosed, "this advisor view was closed when optimize() returned: "
                                                     "no further call is made")

    name = property(lambda self: self._advisor.name)
    accepts_images = property(lambda self: self._advisor.accepts_images)

    @property
    def usage(self) -> AdvisorUsage:
        """A copy of the advisor's usage so far (changing it changes nothing)."""
        return AdvisorUsage(**vars(self._advisor.usage))

    def charges(self) -> AdvisorCharges:
        """Calls and dollars charged to the run's advisor budget so far, cached ones included."""
        return self._advisor.charges()

    # Options pass through as given (``temperature``, ``sample``): the view adds
    # no defaults of its own, so it asks exactly as the optimizer asked.
    def complete(self, messages: Sequence[Message], **options: Any) -> str:
        with self._gate.call():
            text = self._advisor.complete(messages, **options)
        self._replies.add(self._writer(), text)
        return text

    def reply(self, messages: Sequence[Message], **options: Any) -> AdvisorReply:
        with self._gate.call():
            reply = self._advisor.reply(messages, **options)
        self._replies.add(self._writer(), reply.text)
        return reply

    def _writer(self) -> str:
        """Who answers this view: itself, or a panel's first member when the panel is asked."""
        first = self.members()[0]
        return first.name if first is not self else self.name

    def members(self) -> tuple[AdvisorView, ...]:
        """Views of the advisors that take turns (this view itself for a single advisor)."""
        if self._members is None:
            inner = tuple(self._advisor.members())
            self._members = tuple(self if m is self._advisor else AdvisorView(m, self._replies, self._gate)
                                  for m in inner)
        return self._members

    def count_unusable_reply(self) -> None:
        self._advisor.count_unusable_reply()

    def check_ready(self) -> None:
        with self._gate.call():
            self._advisor.check_ready()

    def close(self) -> None:
        """Refuse every later call (members' views too); return once no call is in flight. The run
        loop calls it when ``optimize()`` returns, so a plugin's leftover thread asks nothing more."""
        self._gate.close()

    def __repr__(self) -> str:
        return f"AdvisorView({self.name!r})"


def _limits(stop: Sequence[str] | None, max_tokens: int | None) -> dict[str, Any] | None:
    """A request's stop strings and reply cap, as keyed and sent (None when neither is given)."""
    limits = {**({"stop": list(stop)} if stop else {}), **({"max_tokens": max_tokens} if max_tokens else {})}
    return limits or None
