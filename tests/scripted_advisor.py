"""A scripted advisor for unit tests of the engine and the optimizers (never a default in ``conf/``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from prompt_opt_api import Advisor, AdvisorReply, Message


class ScriptedAdvisor(Advisor):
    """Replies from a script; records every request in ``asked`` as ``(messages, temperature, sample)``.

    Args:
        replies: A list taken in order (the last one repeats; an exception in it is raised),
            or a function of the conversation that returns the reply's text.
        name: The advisor's name (its reply-cache identity too).
        cost_usd: What each reply costs.
    """

    def __init__(self, replies: Sequence[str | Exception] | Callable[[Sequence[Message]], str],
                 name: str = "Scripted", cost_usd: float = 0.001) -> None:
        super().__init__()
        self.replies = replies if callable(replies) else list(replies)
        self.name, self.cost_usd = name, cost_usd
        self.asked: list[tuple[Sequence[Message], float | None, int]] = []

    def reply(self, messages, *, temperature=None, sample=0, stop=None, max_tokens=None) -> AdvisorReply:
        self.asked.append((messages, temperature, sample))
        if callable(self.replies):
            text = self.replies(messages)
        else:
            text = self.replies[min(len(self.asked) - 1, len(self.replies) - 1)]
        if isinstance(text, Exception):
            raise text
        return AdvisorReply(text=text, prompt_tokens=10, completion_tokens=5, cost_usd=self.cost_usd)
