"""``plan=true``: what a run would do and cost, worked out without calling any model.

Per pair: the split sizes and the answer-model evaluations the optimizer would spend
(``Optimizer.planned_evaluations``, capped by the pair's budget) plus the test scoring.
The cached share looks up, read-only, the answers of the prompts known in advance (the
data set's question, hand-written and starting prompts) on each val split under the answer
keys the evaluator would use. Advisor calls come from ``Optimizer.planned_advisor_calls``
and dollars from the advisor's price (``Advisor.estimated_cost_usd``: litellm's price
map; a local server costs nothing). Wall time uses the store's measured speeds (median
seconds per answer-model query and per advisor call).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from optimize.answer_store import AnswerStore
from optimize.evaluator import answer_cache_key
from prompt_opt_api import Advisor, AnswerModel, Example, Optimizer, Pair, Prompt

# One advisor call's size when the store has measured none for that advisor: about a
# critic meta-prompt (task, scored prompts, mistakes); the reply at the advisor's cap.
ASSUMED_PROMPT_TOKENS = 1500
ASSUMED_COMPLETION_TOKENS = 400


@dataclass
class PairPlan:
    """One pair's planned work."""

    key: str
    n_train: int
    n_val: int
    n_test: int
    evaluations: int | None  # charged to the pair's budget; None: unbounded and unknown
    known: int  # planned answers of prompts known in advance
    known_cached: int  # ... of which the store already holds


@dataclass
class AdvisorPlan:
    """Planned advisor use."""

    name: str
    calls: int | None  # None: the optimizer cannot say
    usd_per_call: float | None  # None: no price known
    local: bool
    tokens: tuple[float, float]  # prompt, completion tokens per call
    tokens_measured: bool
    seconds_per_call: float | None
    cap_calls: int | None
    cap_usd: float | None
    seconds_measured: bool = True  # False: the advisor's assumed_seconds_per_call

    @property
    def usd(self) -> float | None:
        if self.calls is None or self.usd_per_call is None:
            return None
        usd = self.calls * self.usd_per_call
        return usd if self.cap_usd is None else min(usd, self.cap_usd)


@dataclass
class RunPlan:
    """Everything ``plan=true`` prints."""

    model: str
    optimizer: str
    budget_per_pair: int | None
    pairs: list[PairPlan]
    skipped: list[tuple[str, str]]
    advisor: AdvisorPlan | None
    seconds_per_query: float | None
    speed_samples: int = 0
    notes: list[str] = field(default_factory=list)
    split: str = ""  # the split units (``optimize.split_check.SplitAudit.summary``)

    @property
    def optimizer_evaluations(self) -> int | None:
        planned = [p.evaluations for p in self.pairs]
        return None if None in planned else sum(planned)

    @property
    def test_evaluations(self) -> int:
        return sum(p.n_test for p in self.pairs)

    @property
    def known(self) -> tuple[int, int]:
        return sum(p.known_cached for p in self.pairs), sum(p.known for p in self.pairs)

    def wall_time_s(self) -> float | None:
        """Seconds for the uncached answers and the advisor calls; None without a measured speed."""
        evaluations = self.optimizer_evaluations
        if evaluations is None or self.seconds_per_query is None:
            return None
        seconds = (evaluations + self.test_evaluations - self.known[0]) * self.seconds_per_query
        if self.advisor is not None and self.advisor.calls:
            if self.advisor.seconds_per_call is None:
                return None
            seconds += self.advisor.calls * self.advisor.seconds_per_call
        return seconds

    def render(self) -> str:
        """The plan as text for a terminal."""
        budget = "unlimited" if self.budget_per_pair is None else f"at most {self.budget_per_pair}"
        lines = [(f"Run plan (no model called): answer model {self.model}, optimizer {self.optimizer}, "
                  f"{budget} evaluations a pair"), ""]
        width = max([len(p.key) for p in self.pairs] + [4])
        lines.append(f"{'pair':<{width}}  train  val  test  evaluations  known answers cached")
        for p in self.pairs:
            evals = "?" if p.evaluations is None else str(p.evaluations)
            lines.append(f"{p.key:<{width}}  {p.n_train:>5}  {p.n_val:>3}  {p.n_test:>4}  "
                         f"{evals + ' + ' + str(p.n_test):>11}  {p.known_cached:>6} of {p.known}")
        for key, reason in self.skipped:
            lines.append(f"{key:<{width}}  skipped: {reason}")
        lines.append("")
        evaluations = self.optimizer_evaluations
        total = "unknown (no budget cap)" if evaluations is None else f"{evaluations + self.test_evaluations:,}"
        lines.append(f"pairs:           {len(self.pairs)} to run" + (f", {len(self.skipped)} skipped" if self.skipped
                                                                      else ""))
        if self.split:
            lines.append(f"split:           by document, {self.split}")
        lines.append(f"answer model:    {total} evaluations planned ("
                     f"{'?' if evaluations is None else f'{evaluations:,}'} by the optimizer, at most, "
                     f"+ {self.test_evaluations:,} test)")
        cached, known = self.known
        share = f"{cached / known:.0%}; " if known else ""
        lines.append(f"cached:          {cached:,} of the {known:,} planned answers of prompts known in advance"
                     f" ({share}the data set's question, hand-written and starting prompts on val)")
        lines.append(f"advisor:         {self._advisor_line()}")
        lines.append(f"wall time:       {self._time_line()}")
        lines += [f"note:            {n}" for n in self.notes]
        return "\n".join(lines)

    def _advisor_line(self) -> str:
        a = self.advisor
        if a is None:
            return "none (this optimizer writes no prompts)"
        calls = ("an unknown number of calls" if a.calls is None
                 else f"up to {a.calls} call{'' if a.calls == 1 else 's'}")
        cap = f" (budget: {a.cap_calls} calls)" if a.cap_calls is not None else ""
        if a.local:
            usd = "$0 (local)"
        elif a.usd_per_call is None:
            usd = "price unknown (not in litellm's price map)"
        else:
            tokens = f"{a.tokens[0]:.0f} + {a.tokens[1]:.0f} tokens a call, " + (
                "measured" if a.tokens_measured else "assumed")
            limit = f", the run stops at ${a.cap_usd:.2f}" if a.cap_usd is not None else ""
            usd = f"about ${a.usd:.4f}" if a.usd is not None else f"${a.usd_per_call:.4f} a call"
            usd += f" ({tokens}{limit})"
        return f"{a.name}, {calls}{cap}, {usd}"

    def _time_line(self) -> str:
        if self.seconds_per_query is None:
            return f"no measurement yet for {self.model} (the store records speeds as answers are computed)"
        seconds = self.wall_time_s()
        speed = (f"{self.seconds_per_query:.3g} s a query, median of {self.speed_samples} batches" if self.speed_samples
                 else f"{self.seconds_per_query:.3g} s a query assumed: nothing measured yet")
        if seconds is None:
            if self.advisor is not None and self.advisor.calls and self.advisor.seconds_per_call is None:
                return f"unknown: no advisor call of {self.advisor.name} measured yet ({speed})"
            return f"unknown ({speed})"
        advisor = ""
        if self.advisor is not None and self.advisor.calls:
            advisor = f", {self.advisor.seconds_per_call:.3g} s an advisor call" + (
                "" if self.advisor.seconds_measured else " assumed")
        return f"up to about {_duration(seconds)} ({speed}{advisor}; cached answers cost nothing)"


def _duration(seconds: float) -> str:
    minutes, secs = divmod(math.ceil(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min {secs} s" if minutes else f"{secs} s"


def _known_answer_keys(identity: dict, known: Sequence[Prompt], val: Sequence[Example],
                       budget: int | None) -> list[str]:
    """The answer keys of the known prompts on val, each once. The budget stops whole-val scores
    in order (the later ones never come); a prompt that sends the requests of one before it (the
    same text and demos with a reply trim) is answered by the same answers and costs nothing."""
    whole_vals = None if budget is None else budget // max(1, len(val))
    keys: dict[str, None] = {}
    requests: set[tuple[str, ...]] = set()
    for prompt in known:
        prompt_keys = tuple(answer_cache_key(identity, prompt, ex) for ex in val)
        if prompt_keys not in requests:
            if whole_vals is not None and len(requests) >= whole_vals:
                break
            requests.add(prompt_keys)
        keys.update(dict.fromkeys(prompt_keys))
    return list(keys)


def make_plan(pairs: Sequence[Pair], too_small: Sequence[tuple[str, str]], model: AnswerModel, optimizer: Optimizer,
              advisor: Advisor | None, store: AnswerStore | None, max_evaluations_per_pair: int | None,
              max_advisor_calls: int | None = None, max_advisor_usd: float | None = None) -> RunPlan:
    """Work out a run's plan. Nothing here calls ``model.answer`` or the advisor.

    Args:
        pairs: Pairs to run, split.
        too_small: Pairs reported as skipped.
        model: The answer model, not loaded (only ``cache_identity`` is read).
        optimizer: The optimizer.
        advisor: The configured advisor (not started), or None.
        store: The answer store opened read-only, or None when there is none yet.
        max_evaluations_per_pair: The pair budget (None: unlimited).
        max_advisor_calls: The run's advisor call budget.
        max_advisor_usd: The run's advisor dollar budget.
    """
    identity = model.cache_identity()
    budget = max_evaluations_per_pair
    planned: list[PairPlan] = []
    visible_pairs = [dataclasses.replace(pair, test=()) for pair in pairs]  # what the optimizer would see
    for pair, visible in zip(pairs, visible_pairs):
        own = optimizer.planned_evaluations(visible, budget)
        evaluations = budget if own is None else own if budget is None else min(own, budget)
        keys = _known_answer_keys(identity, optimizer.known_prompts(visible), pair.val, budget)
        cached = store.get_answers(keys) if store is not None and keys else {}
        planned.append(PairPlan(key=pair.key, n_train=len(pair.train), n_val=len(pair.val), n_test=len(pair.test),
                                evaluations=evaluations, known=len(keys), known_cached=len(cached)))

    speed = store.measured_speed("answer", model.name) if store is not None else None
    plan = RunPlan(model=model.name, optimizer=optimizer.name, budget_per_pair=budget, pairs=planned,
                   skipped=list(too_small), advisor=None,
                   seconds_per_query=speed["seconds"] if speed else model.assumed_seconds_per_query,
                   speed_samples=int(speed["samples"]) if speed else 0)
    if advisor is not None:
        plan.advisor = _advisor_plan(advisor, optimizer, visible_pairs, store, max_advisor_calls, max_advisor_usd)
        try:
            advisor.check_ready()
        except Exception as err:  # noqa: BLE001 - a plan reports what a run would stop on
            plan.notes.append(f"a run would stop here: {err}")
    return plan


def _advisor_plan(advisor: Advisor, optimizer: Optimizer, pairs: Sequence[Pair], store: AnswerStore | None,
                  max_calls: int | None, max_usd: float | None) -> AdvisorPlan:
    members = list(advisor.members())
    calls = optimizer.planned_advisor_calls(pairs, members=len(members))
    if calls is not None and max_calls is not None:
        calls = min(calls, max_calls)
    # members share the calls (the critic's rounds rotate, the advisor recipe asks each)
    prices, seconds, tokens, measured, measured_time = [], [], [], True, True
    for member in members:
        speed = store.measured_speed("advisor", member.name) if store is not None else None
        if speed and speed["prompt_tokens"]:
            size = (speed["prompt_tokens"], speed["completion_tokens"])
        else:
            size = (ASSUMED_PROMPT_TOKENS, getattr(member, "max_tokens", ASSUMED_COMPLETION_TOKENS))
            measured = False
        tokens.append(size)
        prices.append(member.estimated_cost_usd(int(size[0]), int(size[1])))
        seconds.append(speed["seconds"] if speed else member.assumed_seconds_per_call)
        measured_time = measured_time and speed is not None

    def mean(values: list) -> float | None:
        return None if None in values else sum(values) / len(values)

    return AdvisorPlan(
        name=advisor.name, calls=calls, usd_per_call=mean(prices), local=all(p == 0.0 for p in prices),
        tokens=(sum(t[0] for t in tokens) / len(tokens), sum(t[1] for t in tokens) / len(tokens)),
        tokens_measured=measured, seconds_per_call=mean(seconds), cap_calls=max_calls, cap_usd=max_usd,
        seconds_measured=measured_time,
    )
