"""Repeated candidates dropped before they are scored: no prompt is scored twice."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prompt_opt_api import Prompt


def unique_prompts(prompts: Iterable[Prompt], key: Callable[[Prompt], str] = lambda p: p.text) -> list[Prompt]:
    """``prompts`` without repeats (two prompts are one when their ``key`` is; by default their
    text), in order; the first of each is kept, so its origin is the one recorded."""
    unique: dict[str, Prompt] = {}
    for prompt in prompts:
        unique.setdefault(key(prompt), prompt)
    return list(unique.values())
