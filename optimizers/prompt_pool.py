"""Asking an advisor for prompts, parsing its reply, and the pool of scored candidates
that ``PoolOptimizer`` starts from.

A weak advisor repeats itself, returns the input, or forgets the tags; so every reply is
parsed leniently, a reply with no prompt gets one correction turn, repeats are dropped,
and when too few new prompts came back the advisor is asked again at a higher
temperature (each request with its own sample index, so the reply cache keeps a resumed
run on the same path).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from optimizers import meta_prompts as text
from prompt_opt_api import (
    Advisor,
    AdvisorBudgetExhausted,
    AdvisorError,
    BudgetExhausted,
    Message,
    Pair,
    Prompt,
    PromptEvaluator,
    Score,
    Trial,
)

log = logging.getLogger(__name__)

# <prompt1>...</prompt1> as asked, or plain <prompt> tags; the last one may be open (cut by the stop string)
_TAGGED = re.compile(r"<prompt\d*>(.*?)(?=</prompt\d*>|<prompt\d*>|$)", re.DOTALL | re.IGNORECASE)
_MAX_PROMPT_CHARS = 600


def normalized(prompt_text: str) -> str:
    """The form used to tell repeats apart: case and whitespace ignored."""
    return " ".join(prompt_text.casefold().split())


def parse_prompts(reply: str) -> list[str]:
    """Prompts between ``<promptN>`` (or ``<prompt>``) tags (an unclosed last tag counts), cleaned.

    Empty ones, ones over 600 characters and ones that still carry tags are dropped;
    surrounding quotes and code fences are stripped.
    """
    found = []
    for raw in _TAGGED.findall(reply or ""):
        candidate = raw.strip().strip("`").strip().strip("\"'«»").strip()
        if candidate and len(candidate) <= _MAX_PROMPT_CHARS and "<" not in candidate:
            found.append(candidate)
    return found


@dataclass
class AskResult:
    """Prompts an advisor wrote for one request, and what went wrong on the way."""

    prompts: list[str] = field(default_factory=list)
    failed_calls: int = 0  # no reply after retries (AdvisorError)
    unusable_replies: int = 0  # a reply with no prompt even after the correction
    budget_spent: bool = False


def reply_limits(n: int) -> dict[str, Any]:
    """Stop after the n-th prompt's closing tag, and cap the reply at what n prompts need."""
    return {"stop": [text.CLOSING_TAG.format(n=n)],
            "max_tokens": text.REPLY_TOKENS_FIXED + n * text.REPLY_TOKENS_PER_PROMPT}


def ask_for_prompts(advisor: Advisor, messages: Sequence[Message], n: int, sample_base: int,
                    known: set[str], temperature: float | None = None, max_reasks: int = 2,
                    reask_step: float = 0.3) -> AskResult:
    """Ask ``advisor`` for ``n`` prompts not in ``known`` (normalized texts; updated).

    Args:
        advisor: The run's advisor.
        messages: The meta-prompt conversation.
        n: How many new prompts are wanted.
        sample_base: First sample index for this request (callers keep ranges apart).
        known: Normalized texts already in the pool; new prompts are added to it.
        temperature: First temperature (None: the advisor's default, 0.7 assumed for re-asks).
        max_reasks: Extra requests at higher temperature when too few new prompts came.
        reask_step: Temperature added per re-ask.
    """
    result = AskResult()
    temp = temperature
    limits = reply_limits(n)
    for attempt in range(max_reasks + 1):
        if len(result.prompts) >= n:
            break
        sample = sample_base + attempt
        try:
            reply = advisor.complete(messages, temperature=temp, sample=sample, **limits)
            prompts = parse_prompts(reply)
            if not prompts:  # one correction turn, then a failed proposal
                fix = [*messages, {"role": "assistant", "content": reply},
                       {"role": "user", "content": text.CORRECTION.format(n=n)}]
                prompts = parse_prompts(advisor.complete(fix, temperature=temp, sample=sample, **limits))
                if not prompts:
                    result.unusable_replies += 1
                    advisor.count_unusable_reply()
        except AdvisorBudgetExhausted:
            result.budget_spent = True
            break
        except AdvisorError as err:
            log.warning("advisor %r: proposal failed: %s", advisor.name, err)
            result.failed_calls += 1
            prompts = []
        for prompt in prompts:
            key = normalized(prompt)
            if key not in known and len(result.prompts) < n:
                known.add(key)
                result.prompts.append(prompt)
        temp = (0.7 if temp is None else temp) + reask_step
    return result


class PromptPool:
    """Candidates of one pair with their full-val scores; the trials an optimizer returns.

    Args:
        pair: The visible pair.
        evaluator: The sealed evaluator.
        optimizer: Name written into trials.
        racing: Score new candidates with racing (``evaluator.race``).
        minibatch: Racing minibatch size.
    """

    def __init__(self, pair: Pair, evaluator: PromptEvaluator, optimizer: str, racing: bool = False,
                 minibatch: int = 4) -> None:
        self.pair, self.evaluator, self.optimizer = pair, evaluator, optimizer
        self.racing, self.minibatch = racing, minibatch
        self.scored: list[tuple[Prompt, Score]] = []
        self.trials: list[Trial] = []
        self.known: set[str] = set()
        self._known_texts: set[str] = set()
        self.budget_spent = False

    @property
    def best(self) -> tuple[Prompt, Score] | None:
        """Lowest full-val CER; the earliest on a tie."""
        return min(self.scored, key=lambda item: item[1].cer) if self.scored else None

    def ranked(self) -> list[tuple[Prompt, Score]]:
        return sorted(self.scored, key=lambda item: item[1].cer)

    def is_known(self, prompt: Prompt) -> bool:
        return self.key(prompt) in self.known

    def known_texts(self) -> set[str]:
        """Normalized texts of every candidate so far (what ``ask_for_prompts`` must not repeat)."""
        return set(self._known_texts)

    @staticmethod
    def key(prompt: Prompt) -> str:
        """What tells two candidates apart: the normalized text, the demos' rows, the retrieval rule, the demo
        cut, the answer shapes and the length cut."""
        demos = ",".join(d.source_row for d in prompt.demos)
        if prompt.retrieval is not None:
            rule = prompt.retrieval
            demos += f"retrieved:k={rule.k},{rule.signature}" + (",distinct" if rule.distinct_answers else "")
        if prompt.demo_chars is not None:
            demos += f",cut={prompt.demo_chars}"
        if prompt.answer_shapes is not None:
            demos += f",trim={json.dumps(prompt.answer_shapes.identity(), ensure_ascii=False, sort_keys=True)}"
        return normalized(prompt.text) + ("|" + demos if demos else "")

    def add(self, prompts: Sequence[Prompt], step: int, stop_when_beaten: bool = False,
            keep_ties: bool = False) -> list[tuple[Prompt, Score]]:
        """Score the prompts not seen before on full val (racing if enabled); return the new scores.

        ``stop_when_beaten``: score val in chunks (``minibatch`` examples, fewer on a val split
        under 3 chunks) and drop a candidate
        as soon as its summed CER reaches the best's on full val: CER is never negative, so it
        could no longer win (a tie goes to the earlier). Lossless, unlike racing: the winner is
        the one full scoring would pick. ``keep_ties``: drop it only once its sum exceeds the
        best's (a caller that prefers it on a tie sees the tie). Stops quietly when the
        answer-model budget is spent (``budget_spent`` is set).
        """
        fresh = []
        for prompt in prompts:
            key = self.key(prompt)
            if key not in self.known:
                self.known.add(key)
                self._known_texts.add(normalized(prompt.text))
                fresh.append(prompt)
        added: list[tuple[Prompt, Score]] = []
        if not fresh or self.budget_spent:
            return added
        try:
            if self.racing:
                incumbent = self.best[1] if self.best else None
                for prompt in fresh:  # one at a time: a budget stop keeps the ones already raced
                    (score,) = self.evaluator.race([prompt], self.pair.val, incumbent, self.minibatch)
                    if score is not None:
                        added.append(self._record(prompt, score, step))
                        if incumbent is None or score.cer < incumbent.cer:
                            incumbent = score
            else:
                for prompt in fresh:
                    score = (self._unless_beaten(prompt, keep_ties) if stop_when_beaten
                             else self.evaluator.score(prompt, self.pair.val))
                    if score is not None:
                        added.append(self._record(prompt, score, step))
        except BudgetExhausted:
            self.budget_spent = True
        return added

    def _unless_beaten(self, prompt: Prompt, keep_ties: bool = False) -> Score | None:
        """Full-val score of ``prompt``, or None once its partial CER sum reaches the best's sum
        (exceeds it, with ``keep_ties``)."""
        val = tuple(self.pair.val)
        if self.best is None:
            return self.evaluator.score(prompt, val)
        to_beat = sum(r.cer for r in self.best[1].results)
        size, so_far = max(1, min(self.minibatch, len(val) // 3)), 0.0
        for start in range(0, len(val) - size, size):  # the last chunk comes with the full score below
            so_far += sum(r.cer for r in self.evaluator.score(prompt, val[start:start + size]).results)
            if so_far > to_beat or (so_far == to_beat and not keep_ties):
                return None
        return self.evaluator.score(prompt, val)  # the answers scored so far are not paid again

    def _record(self, prompt: Prompt, score: Score, step: int) -> tuple[Prompt, Score]:
        self.scored.append((prompt, score))
        self.trials.append(Trial(prompt=prompt, split="val", score=score, step=step, optimizer=self.optimizer))
        return prompt, score
