"""Every score of a run, written the moment it is made: to the store and to ``trials.jsonl``.

The store is the source of truth (a resumed run replays a finished pair's trials from it);
``trials.jsonl`` is rebuilt each attempt. ``score_listener`` is what an evaluator calls
with each score: it logs the score, keeps it for the pair's verdict and moves the progress line.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from optimize.answer_store import AnswerStore, RunLease
from optimize.budget import Budget
from optimize.progress import RunProgress, progress_text
from optimize.run_record import TrialRecord
from prompt_opt_api import FULL_VAL, Prompt, Score
from prompt_opt_api.answer_shape import shapes_note

ScoreListener = Callable[[Prompt, str, Score], None]


class TrialLog:
    """Appends every score to the store and to trials.jsonl the moment it is made."""

    def __init__(self, store: AnswerStore, run_id: str, path: Path, context: dict[str, Any],
                 lease: RunLease | None) -> None:
        self.store, self.run_id, self.context, self.lease = store, run_id, context, lease
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = path.open("w", encoding="utf-8")  # rebuilt each run: the store is the source of truth

    def replay(self, records: Sequence[dict[str, Any]]) -> None:
        for record in records:
            self._write(record)

    def record(self, pair: str, prompt: Prompt, split: str, score: Score, advisor_cost: float,
               evaluations_so_far: int | None = None) -> dict[str, Any]:
        record = {
            "pair": pair,
            "split": split,
            "cer": score.cer,
            "exact_match": score.exact_match,
            "n": score.n,
            "prompt": prompt.text,
            "n_demos": n_demos(prompt),
            "demo_rows": demo_rows(prompt),
            **demo_settings(prompt),
            "origin": prompt.origin,
            "author": prompt.provenance.author if prompt.provenance is not None else "",
            "advisor_cost_usd_so_far": advisor_cost,
            "evaluations_so_far": evaluations_so_far,  # the pair's budget used, this score included
            "predictions": [
                {"row": r.source_row, "answer": r.answer, "prediction": r.prediction, "cer": r.cer,
                 **({"error_class": r.error_class} if r.error_class else {}),
                 **({"raw_prediction": r.raw_prediction} if r.raw_prediction else {})} for r in score.results
            ],
            **self.context,
        }
        self.store.append_trial(self.run_id, pair, record, lease=self.lease)
        self._write(record)
        return record

    def _write(self, record: dict[str, Any]) -> None:
        self._fh.write(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n")
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()


def n_demos(prompt: Prompt) -> int:
    """Demos per request: the fixed ones, or how many a retrieval rule picks."""
    return prompt.retrieval.k if prompt.retrieval is not None else len(prompt.demos)


def demo_rows(prompt: Prompt) -> list[str]:
    """The demos' rows, or the retrieval rule in words (so candidates with other rules stay apart),
    and the demo cut, the answer shapes (each shape listed) and the length cut when there are."""
    cut = [f"each demo page cut to {prompt.demo_chars} characters around its answer"] if prompt.demo_chars else []
    if prompt.answer_shapes is not None and prompt.answer_shapes.shapes:
        shapes = prompt.answer_shapes.shapes
        cut.append(f"{shapes_note(len(shapes))}: {json.dumps(list(shapes), ensure_ascii=False)}")
    if prompt.answer_shapes is not None and prompt.answer_shapes.max_chars is not None:
        cut.append(f"replies cut to {prompt.answer_shapes.max_chars} characters")
    if (rule := prompt.retrieval) is not None:
        return [f"retrieved per document: k={rule.k} of {len(rule.pool)} train pages, {rule.signature}"
                + (", distinct answers" if rule.distinct_answers else "")] + cut
    return [d.source_row for d in prompt.demos] + cut


def demo_settings(prompt: Prompt) -> dict[str, Any]:
    """The demo cut, distinct answers, answer shapes and the length cut, named only when set (records
    without them are as they were)."""
    rule, shapes = prompt.retrieval, prompt.answer_shapes
    return {**({"demo_chars": prompt.demo_chars} if prompt.demo_chars else {}),
            **({"distinct_answers": True} if rule is not None and rule.distinct_answers else {}),
            **({"answer_shapes": list(shapes.shapes)} if shapes is not None and shapes.shapes else {}),
            **({"answer_max_chars": shapes.max_chars} if shapes is not None and shapes.max_chars else {})}


def score_listener(key: str, trial_log: TrialLog, records: list[TrialRecord], budget: Budget, bar: RunProgress,
                   cost_so_far: Callable[[], float],
                   advisor_so_far: Callable[[], tuple[int, float] | None] = lambda: None) -> ScoreListener:
    """The evaluator's score listener. Built apart so its closure holds the pair's name,
    never the pair itself (whose test split the optimizer must not reach)."""

    def listener(prompt: Prompt, split: str, score: Score) -> None:
        records.append(TrialRecord(prompt, trial_log.record(key, prompt, split, score, cost_so_far(), budget.used)))
        val = [r.cer for r in records if r.split == FULL_VAL]
        bar.set_postfix_str(progress_text(key, len(records), min(val) if val else None, budget.used, budget.limit,
                                          *(advisor_so_far() or (None, None))))

    return listener
