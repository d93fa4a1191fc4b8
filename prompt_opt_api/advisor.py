"""The advisor contract: a prompt-writing LLM, chat messages in, reply text out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

# {"role": ..., "content": str} or, for advisors that accept images, content as a list of
# OpenAI-style parts ({"type": "text", ...}, {"type": "image_url", ...}).
Message = dict[str, Any]


@dataclass
class AdvisorUsage:
    """Running totals for one advisor object.

    Attributes:
        calls: Requests that reached the advisor (cache misses).
        cached_calls: Replies served from the store (a resumed run pays nothing twice).
        failed_calls: Requests given up after retries.
        unusable_replies: Replies with no usable prompt even after one correction
            (optimizers count them: a failed proposal, the run goes on).
        prompt_tokens: Tokens sent (cache misses only).
        completion_tokens: Tokens received (cache misses only).
        cost_usd: Dollars actually spent (litellm's price map; 0 for local models).
    """

    calls: int = 0
    cached_calls: int = 0
    failed_calls: int = 0
    unusable_replies: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0


@dataclass(frozen=True)
class AdvisorCharges:
    """What the run's advisor budget has counted so far: calls and dollars."""

    calls: int = 0
    usd: float = 0.0


@dataclass(frozen=True)
class AdvisorReply:
    """One reply and what it cost."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0


class Advisor:
    """Base class of every advisor (cloud or local), as optimizers see it.

    Contract:
        * ``complete(messages, temperature=None, sample=0)`` returns the reply text of
          one conversation. ``sample`` numbers repeated requests of the same conversation
          (several samples at a temperature): the engine caches replies by model,
          messages, temperature, max tokens and sample, so a resumed run gets the same
          replies and pays nothing twice.
        * It raises ``AdvisorError`` when no usable reply came after the advisor's own
          retries (optimizers count a failed proposal and go on),
          ``AdvisorBudgetExhausted`` when the run's advisor budget is spent, and
          ``EndpointUnusable`` / ``EndpointUnreachable`` when the endpoint cannot be used
          or reached at all (the run stops).
        * ``usage`` holds calls, tokens and dollars spent so far; an optimizer reports a
          reply it could not use with ``count_unusable_reply()`` (the advisor it gets is a
          read-only view, whose ``usage`` is a copy). ``charges()`` is what the run's
          advisor budget counts (calls and dollars; for the engine's session, cached
          replies too).
        * ``members()`` lists the advisors that take turns (a panel, e.g. ``advisor=panel``);
          a single advisor is its own only member. Optimizers that ask several times
          (the critic's rounds, the advisor recipe) rotate through the members and credit
          each prompt to the member that wrote it; ``complete`` on a panel asks its first
          member.
        * Secrets come from the environment only; nothing an advisor logs or returns
          contains a key.

    Attributes:
        name: Display name, used in output file names (``<model>_sep_<name>.csv``).
        accepts_images: Whether messages may carry page images (VLM advisors).
        usage: Calls, tokens and dollars spent so far.
        assumed_seconds_per_call: The run plan's guess of a call's duration before the store
            has measured one; None: no guess.
    """

    name: str = "advisor"
    accepts_images: bool = False
    assumed_seconds_per_call: float | None = None

    def __init__(self) -> None:
        self.usage = AdvisorUsage()

    def complete(self, messages: Sequence[Message], *, temperature: float | None = None, sample: int = 0,
                 stop: Sequence[str] | None = None, max_tokens: int | None = None) -> str:
        """Reply to one conversation (``temperature`` None: the advisor's default).

        ``stop``: the reply ends before the first of these strings (the caller asked for a
        known number of tagged prompts: nothing after the last tag is worth paying for);
        ``max_tokens``: a smaller reply cap than the advisor's own.
        """
        return self.reply(messages, temperature=temperature, sample=sample, stop=stop, max_tokens=max_tokens).text

    def reply(self, messages: Sequence[Message], *, temperature: float | None = None, sample: int = 0,
              stop: Sequence[str] | None = None, max_tokens: int | None = None) -> AdvisorReply:
        """Like ``complete``, with the tokens and dollars the reply cost."""
        raise NotImplementedError

    def cache_identity(self) -> dict[str, object]:
        """What, besides the request, makes a reply (the engine's reply-cache key part)."""
        return {"name": self.name}

    def check_ready(self) -> None:
        """Raise ``EndpointUnusable`` before any work when the advisor cannot be used (e.g. no key)."""

    def estimated_cost_usd(self, prompt_tokens: int, completion_tokens: int) -> float | None:
        """Dollars one call of this size would cost (``plan=true``), without calling anything;
        None when the price is unknown."""
        return None

    def members(self) -> Sequence[Advisor]:
        """The advisors that take turns in this one (itself, unless it is a panel)."""
        return (self,)

    def count_unusable_reply(self) -> None:
        """Count a reply that held no usable prompt even after a correction (``usage.unusable_replies``)."""
        self.usage.unusable_replies += 1

    def charges(self) -> AdvisorCharges:
        """Calls and dollars counted against the run's advisor budget so far. A plain
        advisor counts what it was asked; the engine's session counts cached replies too."""
        return AdvisorCharges(calls=self.usage.calls + self.usage.cached_calls, usd=self.usage.cost_usd)

    def close(self) -> None:
        """Release servers and connections; idempotent."""

