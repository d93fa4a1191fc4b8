"""``advisor=panel``: several advisors taking turns in one run.

One run with a panel says which advisor writes the better prompts: every prompt is
credited to the member that wrote it, so the run's rows and summary say which advisor
wrote the winner of each pair and how well each member's best prompt did.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import fields

from prompt_opt_api import Advisor, AdvisorReply, AdvisorUsage, Message


class AdvisorPanel(Advisor):
    """Advisors that take turns (``members()``); asked directly, the first one answers.

    Its ``usage`` is the members' added up (calls, unusable replies, dollars): each member
    counts its own, so the panel's total and each member's share always agree.

    Args:
        members: The member advisors, by slot name (Hydra instantiates each from its own
            ``conf/advisor/*.yaml``; see ``conf/advisor/panel.yaml``). Slots keep their
            config order.
        name: Display name (results file name); default: member names joined by ``+``.
    """

    def __init__(self, members: Mapping[str, Advisor] | Sequence[Advisor], name: str | None = None) -> None:
        # no Advisor.__init__: ``usage`` is computed from the members, never kept here
        listed = list(members.values()) if isinstance(members, Mapping) else list(members)
        if not listed:
            raise ValueError("advisor=panel needs at least one member (advisor.members)")
        names = [m.name for m in listed]
        if len(set(names)) != len(names):
            # credit goes by name: two members with one name could not be told apart
            raise ValueError(f"advisor=panel: members need distinct names, got {names}")
        self._members = tuple(listed)
        self.name = name or "+".join(names)
        self.accepts_images = all(m.accepts_images for m in listed)

    def members(self) -> Sequence[Advisor]:
        return self._members

    @property
    def usage(self) -> AdvisorUsage:  # type: ignore[override]
        """The members' usage added up (a fresh value: count through a member)."""
        total = AdvisorUsage()
        for member in self._members:
            for f in fields(AdvisorUsage):
                setattr(total, f.name, getattr(total, f.name) + getattr(member.usage, f.name))
        return total

    def count_unusable_reply(self) -> None:
        """Asked directly, the first member answered: its count (and so the panel's) goes up."""
        self._members[0].count_unusable_reply()

    def reply(self, messages: Sequence[Message], *, temperature: float | None = None, sample: int = 0,
              stop: Sequence[str] | None = None, max_tokens: int | None = None) -> AdvisorReply:
        return self._members[0].reply(messages, temperature=temperature, sample=sample, stop=stop,
                                      max_tokens=max_tokens)

    def cache_identity(self) -> dict[str, object]:
        return {"panel": [m.cache_identity() for m in self._members]}

    def check_ready(self) -> None:
        for member in self._members:
            member.check_ready()

    def close(self) -> None:
        for member in self._members:
            member.close()
