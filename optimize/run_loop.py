"""The per-pair run loop: optimize on train/val, re-score the winner on test, write results.

Resumable: every score is logged to the store as it happens and a finished pair's
result is stored under the run id, so re-running the same command after a kill skips
finished pairs and serves every already computed answer from the cache.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from models.answer_model_base import AnswerModel
from optimize.answer_store import AnswerStore
from optimize.contracts import Pair, Prompt, Score
from optimize.evaluator import Budget, BudgetExhausted, Evaluator
from optimize.results_files import merge_optimal_prompts, results_file_name, write_json, write_results_csv
from optimizers.base import Optimizer, dataset_question_prompt
from tasks.cer_metric import CerMetric, mean

log = logging.getLogger(__name__)


@dataclass
class RunSummary:
    """What a run produced; ``mean_test_cer`` is what the entry point returns."""

    run_id: str
    mean_test_cer: float
    rows: list[dict[str, Any]]
    results_csv: Path
    model_calls: int = 0
    cache_hits: int = 0
    evaluations: int = 0
    advisor_cost_usd: float = 0.0
    elapsed_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


class _TrialLog:
    """Appends every score to the store and to trials.jsonl the moment it is made."""

    def __init__(self, store: AnswerStore, run_id: str, path: Path, context: dict[str, Any]) -> None:
        self.store, self.run_id, self.context = store, run_id, context
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = path.open("w", encoding="utf-8")  # rebuilt each run: the store is the source of truth

    def replay(self, records: Sequence[dict[str, Any]]) -> None:
        for record in records:
            self._write(record)

    def record(self, pair: str, prompt: Prompt, split: str, score: Score, advisor_cost: float) -> dict[str, Any]:
        record = {
            "pair": pair,
            "split": split,
            "cer": score.cer,
            "exact_match": score.exact_match,
            "n": score.n,
            "prompt": prompt.text,
            "n_demos": len(prompt.demos),
            "demo_rows": [d.source_row for d in prompt.demos],
            "origin": prompt.origin,
            "advisor_cost_usd_so_far": advisor_cost,
            "predictions": [
                {"row": r.source_row, "answer": r.answer, "prediction": r.prediction, "cer": r.cer} for r in score.results
            ],
            **self.context,
        }
        self.store.append_trial(self.run_id, pair, record)
        self._write(record)
        return record

    def _write(self, record: dict[str, Any]) -> None:
        self._fh.write(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n")
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()


def _pick_best(records: Sequence[dict[str, Any]]) -> tuple[Prompt, dict[str, Any] | None]:
    """Lowest val CER, earliest wins ties; the baseline when nothing was scored on val."""
    val = [r for r in records if r["split"] == "val"]
    if not val:
        return dataset_question_prompt(), None
    best = min(enumerate(val), key=lambda item: (item[1]["cer"], item[0]))[1]
    return best["_prompt"], best


def run_pairs(
    pairs: Sequence[Pair],
    too_small: Sequence[tuple[str, str]],
    model: AnswerModel,
    optimizer: Optimizer,
    advisor: Any,
    advisor_name: str,
    store: AnswerStore,
    metric: CerMetric,
    out_dir: Path,
    run_id: str,
    max_evaluations_per_pair: int | None,
    batch_size: int | None = None,
    results_dir: Path | None = None,
    progress: bool | None = None,
) -> RunSummary:
    """Optimize every pair and write the results files into ``out_dir``.

    Args:
        pairs: Pairs to run (with their train/val/test split).
        too_small: Pairs that cannot be evaluated, reported as skipped rows.
        model: Answer model.
        optimizer: Optimizer plugin.
        advisor: Advisor client or None.
        advisor_name: Advisor name for the results file name.
        store: Answer cache and run state.
        metric: CER metric.
        out_dir: Run folder (Hydra's output dir).
        run_id: Identity of this run's configuration; resuming needs the same one.
        max_evaluations_per_pair: Optimizer budget per pair (test scoring not counted).
        batch_size: Requests per model call (None: the model's preference).
        results_dir: Folder collecting results across runs/advisors for the
            OptimalPrompts merge (None: ``out_dir`` only).
        progress: Show a progress bar (None: only on a terminal).
    """
    from tqdm import tqdm  # lazy: keeps `--help` fast

    started = time.monotonic()
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path = out_dir / results_file_name(model.name, advisor_name)
    context = {"model": model.name, "advisor": advisor_name, "optimizer": optimizer.name, "run_id": run_id}
    trial_log = _TrialLog(store, run_id, out_dir / "trials.jsonl", context)
    rows: list[dict[str, Any]] = [
        {"doc type question type": key, "status": f"skipped: {reason}", "optimizer": optimizer.name}
        for key, reason in too_small
    ]
    totals = {"model_calls": 0, "cache_hits": 0, "evaluations": 0}
    resumed: list[str] = []
    bar = tqdm(pairs, desc="pairs", unit="pair", disable=None if progress is None else not progress)
    try:
        for pair in bar:
            bar.set_postfix_str(pair.key)
            done = store.finished_result(run_id, pair.key)
            if done is not None:
                trial_log.replay(store.trials(run_id, pair.key))
                rows.append(done)
                resumed.append(pair.key)
                log.info("pair %r already finished in an earlier attempt of this run: not redone", pair.key)
            else:
                row, stats = _run_one_pair(
                    pair, model, optimizer, advisor, store, metric, run_id, trial_log,
                    max_evaluations_per_pair, batch_size, bar,
                )
                store.mark_finished(run_id, pair.key, row)
                rows.append(row)
                for k in totals:
                    totals[k] += stats[k]
            # Rewritten after each pair: a crash later keeps every finished pair on disk.
            write_results_csv(csv_path, _ordered(rows))
    finally:
        bar.close()
        trial_log.close()

    rows = _ordered(rows)
    write_results_csv(csv_path, rows)
    if results_dir is not None:
        results_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(csv_path, results_dir / csv_path.name)
        merge_optimal_prompts(results_dir, model.name)
    merge_optimal_prompts(out_dir, model.name)

    scored = [float(r["cer"]) for r in rows if r.get("cer") not in (None, "")]
    summary = RunSummary(
        run_id=run_id,
        mean_test_cer=mean(scored) if scored else float("nan"),
        rows=rows,
        results_csv=csv_path,
        model_calls=totals["model_calls"],
        cache_hits=totals["cache_hits"],
        evaluations=totals["evaluations"],
        advisor_cost_usd=sum(float(r.get("advisor_cost_usd") or 0) for r in rows),
        elapsed_s=time.monotonic() - started,
        extra={"resumed_pairs": resumed},
    )
    write_json(out_dir / "summary.json", _summary_json(summary, context))
    return summary


def _run_one_pair(pair, model, optimizer, advisor, store, metric, run_id, trial_log, max_evals, batch_size, bar):
    store.clear_trials(run_id, pair.key)  # an unfinished earlier attempt is redone from its cache
    cost_at_start = _advisor_cost(advisor)
    records: list[dict[str, Any]] = []

    def listener(prompt: Prompt, split: str, score: Score) -> None:
        record = trial_log.record(pair.key, prompt, split, score, _advisor_cost(advisor) - cost_at_start)
        records.append(dict(record, _prompt=prompt))
        val = [r["cer"] for r in records if r["split"] == "val"]
        best = f" best val CER {min(val):.3f}" if val else ""
        bar.set_postfix_str(f"{pair.key}: {len(records)} scored, {evaluator.budget.used} evaluations{best}")

    evaluator = Evaluator(model, store, metric, pair, Budget(max_evals), batch_size, listener)
    # The optimizer never sees the held-out examples, and its evaluator refuses them.
    visible = dataclasses.replace(pair, test=())
    try:
        optimizer.optimize(visible, evaluator, advisor)
    except BudgetExhausted as err:
        log.info("pair %r: %s; keeping the best prompt found so far", pair.key, err)
    best_prompt, best_record = _pick_best(records)

    tester = Evaluator(model, store, metric, pair, Budget(None), batch_size, listener, allow_test=True)
    test_score = tester.score(best_prompt, pair.test)
    status = "ok" if best_record else "no candidate was scored on val (budget?): baseline reported"
    if pair.split_note:
        status = f"{status}; {pair.split_note}"
    row = {
        "doc type question type": pair.key,
        "optimal prompt": best_prompt.text,
        "cer": test_score.cer,
        "val_cer": best_record["cer"] if best_record else math.nan,
        "exact_match": test_score.exact_match,
        "n_train": len(pair.train),
        "n_val": len(pair.val),
        "n_test": len(pair.test),
        "optimizer": optimizer.name,
        "origin": best_prompt.origin,
        "answer_model_evaluations": evaluator.budget.used + len(pair.test),
        "advisor_cost_usd": round(_advisor_cost(advisor) - cost_at_start, 6),
        "status": status,
    }
    stats = {
        "model_calls": evaluator.model_calls + tester.model_calls,
        "cache_hits": evaluator.cache_hits + tester.cache_hits,
        "evaluations": evaluator.budget.used + len(pair.test),
    }
    return row, stats


def _advisor_cost(advisor: Any) -> float:
    usage = getattr(advisor, "usage", None)
    return float(getattr(usage, "cost_usd", 0.0) or 0.0)


def _ordered(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda r: r["doc type question type"])


def _summary_json(summary: RunSummary, context: dict[str, Any]) -> dict[str, Any]:
    return {
        **context,
        "mean_test_cer": None if math.isnan(summary.mean_test_cer) else summary.mean_test_cer,
        "pairs": summary.rows,
        "results_csv": summary.results_csv.name,
        "model_calls_this_attempt": summary.model_calls,
        "cache_hits_this_attempt": summary.cache_hits,
        "evaluations_this_attempt": summary.evaluations,
        "advisor_cost_usd": summary.advisor_cost_usd,
        "elapsed_s": round(summary.elapsed_s, 3),
        **summary.extra,
    }
