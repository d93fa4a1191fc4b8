"""The advisor contract: a prompt-writing LLM, chat messages in, reply text out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

Message = dict[str, str]


@dataclass
class AdvisorUsage:
    """Running totals for one advisor object."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0


class Advisor:
    """Base class of every advisor (cloud or local), as optimizers see it.

    Contract:
        * ``complete(messages)`` returns the reply text of one conversation, or raises
          ``AdvisorError`` when no usable reply came after the advisor's own retries
          (that pair fails; the run goes on), or ``EndpointUnreachable`` when the
          endpoint cannot be reached at all (the run stops).
        * ``complete_many`` answers several conversations, in order.
        * ``usage`` holds calls, tokens and dollars spent so far.
        * Secrets come from the environment only; nothing an advisor logs or returns
          contains a key.

    Attributes:
        name: Display name, used in output file names (``<model>_sep_<name>.csv``).
        usage: Calls, tokens and dollars spent so far.
    """

    name: str = "advisor"

    def __init__(self) -> None:
        self.usage = AdvisorUsage()

    def complete(self, messages: Sequence[Message]) -> str:
        """Reply to one conversation."""
        raise NotImplementedError

    def complete_many(self, conversations: Sequence[Sequence[Message]]) -> list[str]:
        """Reply to several conversations, in order (subclasses may run them concurrently)."""
        return [self.complete(c) for c in conversations]

    def close(self) -> None:
        """Release servers and connections; idempotent."""
