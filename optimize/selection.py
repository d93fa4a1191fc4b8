"""Which candidate wins a pair: the engine's verdict after the optimizer returns.

Only scores on the **whole** val split compete (partial-val, train and mixed scores never
do; test never breaks a tie): the lowest CER wins, the earliest on a tie. A candidate whose
text carries an answer found only in the test split cannot win (``optimize.leak_check``).
The baseline (the data set's question) is scored on full val by the engine when the
optimizer did not score it. Each author's best is kept for the report.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from optimize.evaluator import Evaluator
from optimize.leak_check import metric_normalizer, test_answer_leaks
from optimize.run_record import TrialRecord
from prompt_opt_api import FULL_VAL, Advisor, Metric, Pair, Prompt, Score, baseline_prompt

CandidateKey = tuple[str, tuple[str, ...]]  # ``run_record.candidate_key``: text and demo rows


def pick_best(records: Sequence[TrialRecord], n_val: int,
              disqualified: Mapping[CandidateKey, str] | None = None,
              ) -> tuple[Prompt, TrialRecord | None]:
    """The winner among scores on the whole val split: lowest CER, the earliest on a tie.

    Only records labelled ``val`` with all ``n_val`` examples compete: a minibatch or
    racing score (``val-subset``), a train score or a mixed one never wins, however low.
    A candidate in ``disqualified`` (by ``candidate_key``; see ``test_answer_leaks``)
    never wins either: the next best does. The baseline is returned when nothing was
    scored on full val.
    """
    full = [r for r in records if r.on_full(FULL_VAL, n_val) and not (disqualified and r.key in disqualified)]
    if not full:
        return baseline_prompt(), None
    best = min(enumerate(full), key=lambda item: (item[1].cer, item[0]))[1]
    return best.prompt, best


@dataclass
class Judgement:
    """The engine's verdict on one pair after the optimizer returned."""

    best_prompt: Prompt
    best_record: TrialRecord | None
    test_score: Score
    leaks: dict[CandidateKey, str]
    baseline_by_engine: bool  # the optimizer did not score the baseline on full val: the engine did
    by_author: dict[str, dict[str, Any]]
    disqualified: list[dict[str, Any]]


def judge(pair: Pair, records: list[TrialRecord], engine: Evaluator, metric: Metric,
          advisor: Advisor | None) -> Judgement:
    """The winner among full-val scores (the baseline scored first if it was not), scored on test."""
    baseline_by_engine = not baseline_scored(records, len(pair.val))
    if baseline_by_engine:
        engine.score(baseline_prompt(), pair.val)
    leaks = test_answer_leaks(records, pair, metric_normalizer(metric))
    best_prompt, best_record = pick_best(records, len(pair.val), leaks)
    test_score = engine.score(best_prompt, pair.test)
    members = {m.name for m in advisor.members()} if is_panel(advisor) else set()
    by_author = best_by_author(records, len(pair.val), best_record, test_score.cer,
                               engine if members else None, pair, members, leaks)
    return Judgement(best_prompt, best_record, test_score, leaks, baseline_by_engine, by_author,
                     disqualified_candidates(records, leaks))


def baseline_scored(records: Sequence[TrialRecord], n_val: int) -> bool:
    """Whether the baseline (the data set's question, no demos, replies as given) has a full-val score."""
    text = baseline_prompt().text
    return any(r.on_full(FULL_VAL, n_val) and r.data["prompt"] == text and not r.data["n_demos"]
               and not r.data.get("answer_shapes") and not r.data.get("answer_max_chars") for r in records)


def disqualified_candidates(records: Sequence[TrialRecord], leaks: Mapping[CandidateKey, str],
                            ) -> list[dict[str, Any]]:
    """The disqualified candidates for the row, ``run.json`` and the report: prompt, val CER, reason."""
    out, seen = [], set()
    for record in records:
        key = record.key
        if key in leaks and key not in seen and record.split == FULL_VAL:
            seen.add(key)
            out.append({"prompt": record.data["prompt"], "origin": record.data["origin"], "demo_rows": list(key[1]),
                        "val_cer": record.cer, "reason": leaks[key]})
    return out


def is_panel(advisor: Advisor | None) -> bool:
    return advisor is not None and len(advisor.members()) > 1


def best_by_author(records: Sequence[TrialRecord], n_val: int, winner: TrialRecord | None,
                   winner_test_cer: float, tester: Evaluator | None, pair: Pair, members: set[str] = frozenset(),
                   disqualified: Mapping[CandidateKey, str] | None = None,
                   ) -> dict[str, dict[str, Any]]:
    """Each author's best prompt on full val (the earliest on a tie), for the report.

    With a panel (``tester`` given) the best of each real member (``members``: the names
    of the panel's advisors) is also scored on test, so one run says how well each
    advisor's prompts do on held-out data; an ``origin`` naming anyone else costs no test
    call. This is reporting only: the row's winner was already chosen by val CER alone.
    Disqualified candidates are nobody's best.
    """
    full = [r for r in records if r.on_full(FULL_VAL, n_val) and r.key not in (disqualified or {})]
    best: dict[str, TrialRecord] = {}
    for record in full:
        author = record.data["author"]
        if author not in best or record.cer < best[author].cer:
            best[author] = record
    out = {}
    for author, record in best.items():
        entry = {"val_cer": record.cer, "prompt": record.data["prompt"], "origin": record.data["origin"],
                 "n_demos": record.data["n_demos"], "test_cer": None}
        if record is winner:
            entry["test_cer"] = winner_test_cer
        elif tester is not None and author in members:
            entry["test_cer"] = tester.score(record.prompt, pair.test).cer
        out[author] = entry
    return out
