"""The per-pair run loop: optimize on train/val, re-score the winner on test, write results.

Resumable: every score is logged to the store as it happens and a finished pair's
result is stored under the run id, so re-running the same command after a kill skips
finished pairs and serves every already computed answer from the cache.

Rules held here: the optimizer gets the pair without its test split and with no path
to the task's files (``optimize.shown_pair``), an evaluator closed when ``optimize()``
returns, and a read-only view of the advisor; the baseline (the data set's question) is
scored on full val by the engine when the optimizer did not; the winner is chosen among
scores on the **full** val split only (partial-val, train and mixed scores never compete;
test never breaks a tie), and a candidate whose text carries an answer found only in the
test split cannot win; one pair's failure (model error, advisor error, context overflow) is recorded in its row
and the run goes on; an unreachable endpoint stops the run at once; the run id is
held under a lease so two processes never run it at the same time.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from optimize.advisor_session import AdvisorSession, AdvisorView
from optimize.attribution import Attribution, ReplyLedger
from optimize.answer_store import AnswerStore, RunLease, RunLeaseHeld
from optimize.error_classes import winner_error_classes
from optimize.evaluator import Budget, Evaluator
from optimize.leak_check import metric_normalizer, test_answer_leaks
from optimize.plugin_errors import log_pair_failure, winner_note
from optimize.pair_attempt import PairMeter
from optimize.progress import RunProgress, progress_text
from optimize.prompt_books import (
    ROW_ENTRY,
    book_file_name,
    book_header,
    entry_json,
    merged_book,
    run_book,
    winner_entry,
    write_book,
)
from optimize.results_files import (
    merge_optimal_prompts,
    read_results_frame,
    results_file_name,
    write_results_csv,
)
from optimize.run_mean import run_mean
from optimize.run_record import RUN_JSON, RunCost, RunRecord, TrialRecord, candidate_key
from optimize.run_settings import RunParts, RunSettings
from optimize.shown_pair import shown_pair
from optimize.stats import bootstrap_interval
from optimize.task_identity import task_id as task_id_from, task_sha256
from prompt_opt_api import (
    FULL_VAL,
    Advisor,
    BudgetExhausted,
    EndpointUnusable,
    Optimizer,
    Pair,
    Prompt,
    Score,
    baseline_prompt,
)

log = logging.getLogger(__name__)


@dataclass
class RunSummary:
    """What a run produced (the entry point returns ``optimize.sweep_value`` of its rows: val, never test)."""

    run_id: str
    mean_test_cer: float
    rows: list[dict[str, Any]]
    results_csv: Path
    model_calls: int = 0
    cache_hits: int = 0
    evaluations: int = 0
    advisor_cost_usd: float = 0.0
    elapsed_s: float = 0.0
    failed_pairs: list[str] = field(default_factory=list)
    resumed_pairs: list[str] = field(default_factory=list)
    answer_model_diagnostics: dict[str, int] = field(default_factory=dict)
    advisor_usage: dict[str, Any] | None = None
    advisor_members: dict[str, dict[str, Any]] | None = None  # a panel's members, each with its own usage


class _TrialLog:
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
            "origin": prompt.origin,
            "author": prompt.provenance.author if prompt.provenance is not None else "",
            "advisor_cost_usd_so_far": advisor_cost,
            "evaluations_so_far": evaluations_so_far,  # the pair's budget used, this score included
            "predictions": [
                {"row": r.source_row, "answer": r.answer, "prediction": r.prediction, "cer": r.cer,
                 **({"error_class": r.error_class} if r.error_class else {})} for r in score.results
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
    """The demos' rows, or the retrieval rule in words (so candidates with other rules stay apart)."""
    if (rule := prompt.retrieval) is not None:
        return [f"retrieved per document: k={rule.k} of {len(rule.pool)} train pages, {rule.signature}"
                + (", distinct answers" if rule.distinct_answers else "")]
    return [d.source_row for d in prompt.demos]


def pick_best(records: Sequence[TrialRecord], n_val: int,
              disqualified: Mapping[tuple[str, tuple[str, ...]], str] | None = None,
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


def run_pairs(pairs: Sequence[Pair], too_small: Sequence[tuple[str, str]], parts: RunParts,
              settings: RunSettings) -> RunSummary:
    """Optimize every pair and write the results files into ``settings.out_dir``.

    Args:
        pairs: Pairs to run (with their train/val/test split).
        too_small: Pairs that cannot be evaluated (key, reason), reported as skipped rows.
        parts: The answer model, optimizer, advisor session (or None), store and metric.
        settings: The run id, budget, output folders and the rest (``RunSettings``).

    Raises:
        RunLeaseHeld: another live process is running ``settings.run_id`` on this store.
        EndpointUnusable: the answer model or advisor cannot be used or reached
            (finished pairs are kept and written first).
    """
    started = time.monotonic()
    settings.out_dir.mkdir(parents=True, exist_ok=True)
    attempt = _Attempt(parts, settings, too_small, len(pairs))
    try:
        for pair in pairs:
            attempt.run_pair(pair)
    finally:
        attempt.close()
    _merge_run_folder(settings.out_dir, parts.model.name, settings.run_id, attempt.csv_path)
    summary = attempt.summary(time.monotonic() - started)
    _publish(summary, attempt.context, pairs, parts.store, settings)
    return summary


class _Attempt:
    """One attempt at a run: its lease, trial log, progress line, rows and counters.

    The progress bar counts pairs but does not hold them: the score listener reaches the
    bar, and nothing an optimizer can reach may lead to a pair's test split.
    """

    def __init__(self, parts: RunParts, settings: RunSettings, too_small: Sequence[tuple[str, str]],
                 n_pairs: int) -> None:
        self.parts, self.settings = parts, settings
        model, name = parts.model, parts.optimizer.name
        self.csv_path = settings.out_dir / results_file_name(model.name, settings.advisor_name)
        info = settings.task_info
        self.data_dir = Path(info["csv"]).parent if info and info.get("csv") else None
        # Built when the first pair has a winner: the model's identity is known by then (a model
        # that cannot state it fails its pairs, not the run).
        self.header = functools.cache(lambda: book_header(info, model.name, model.cache_identity(),
                                                          settings.model_config))
        self.context = {"model": model.name, "advisor": settings.advisor_name, "optimizer": name,
                        "run_id": settings.run_id}
        self.lease = parts.store.acquire_run(settings.run_id, wait_s=settings.lease_wait_s)
        self.trial_log = _TrialLog(parts.store, settings.run_id, settings.out_dir / "trials.jsonl", self.context,
                                   self.lease)
        self.rows = [{"doc type question type": key, "status": f"skipped: {reason}", "optimizer": name}
                     for key, reason in too_small]
        self.totals = {"model_calls": 0, "cache_hits": 0, "evaluations": 0}
        self.resumed: list[str] = []
        self.failed: list[str] = []
        self.bar = RunProgress(n_pairs, settings.progress, settings.progress_every_s, settings.progress_job)

    def run_pair(self, pair: Pair) -> None:
        """Run ``pair``, or take it as an earlier attempt finished it; then rewrite the results."""
        advisor, store, run_id = self.parts.advisor, self.parts.store, self.settings.run_id
        self.bar.set_postfix_str(progress_text(pair.key, 0, None, 0, self.settings.max_evaluations_per_pair,
                                               *(_advisor_so_far(advisor) or (None, None))))
        done = store.finished_result(run_id, pair.key)
        if done is not None:
            self.trial_log.replay(store.trials(run_id, pair.key))
            if isinstance(advisor, AdvisorSession):  # the run's advisor budget counts it as before
                advisor.charge_finished(done.get("advisor_calls") or 0, done.get("advisor_cost_usd") or 0.0)
            self.rows.append(done)
            self.resumed.append(pair.key)
            log.info("pair %r already finished in an earlier attempt of this run: not redone", pair.key)
        else:
            self.rows.append(self._run_new(pair))
        # Rewritten after each pair: a crash later keeps every finished pair on disk.
        _write_results(self.csv_path, self.rows, self.header, self.settings.advisor_name, run_id)
        self.bar.update(1)

    def _run_new(self, pair: Pair) -> dict[str, Any]:
        """The pair's row: its result, or its failure (one pair's failure is not the run's)."""
        meter = PairMeter.start(self.parts.store, self.settings.run_id, pair.key,
                                self.settings.max_evaluations_per_pair, self.parts.advisor)
        try:
            row, stats = _run_one_pair(pair, self.parts, self.settings, self.trial_log, self.lease, self.bar,
                                       self.data_dir, meter)
        except (EndpointUnusable, RunLeaseHeld, KeyboardInterrupt):
            raise  # the run's failure, not the pair's: stop here
        except BaseException as err:  # noqa: BLE001 - one pair's failure (SystemExit too) is not the run's
            self.failed.append(pair.key)
            return {"doc type question type": pair.key, "optimizer": self.parts.optimizer.name,
                    "n_train": len(pair.train), "n_val": len(pair.val), "n_test": len(pair.test),
                    "status": f"failed: {log_pair_failure(pair.key, err, self.parts)}",  # where, and if a retry helps
                    **meter.failed(self.parts.store, self.settings.run_id, pair.key, self.lease, self.totals)}
        self.parts.store.mark_finished(self.settings.run_id, pair.key, row, lease=self.lease)
        for key in self.totals:
            self.totals[key] += stats[key]
        return row

    def close(self) -> None:
        self.bar.close()
        self.trial_log.close()
        self.lease.release()
        _write_results(self.csv_path, self.rows, self.header, self.settings.advisor_name, self.settings.run_id)

    def summary(self, elapsed_s: float) -> RunSummary:
        rows, advisor = _ordered(self.rows), self.parts.advisor
        test_mean = run_mean(rows, "cer").value  # None when a pair failed: failing cannot lower it
        return RunSummary(
            run_id=self.settings.run_id,
            mean_test_cer=float("nan") if test_mean is None else test_mean,
            rows=rows,
            results_csv=self.csv_path,
            **self.totals,
            advisor_cost_usd=advisor.usage.cost_usd if advisor is not None else 0.0,
            elapsed_s=elapsed_s,
            failed_pairs=self.failed,
            resumed_pairs=self.resumed,
            answer_model_diagnostics=self.parts.model.diagnostics(),
            advisor_usage=dict(vars(advisor.usage)) if advisor is not None else None,
            advisor_members=({m.name: dict(vars(m.usage)) for m in advisor.members()}
                             if _is_panel(advisor) else None),
        )


def _write_results(csv_path: Path, rows: list[dict[str, Any]], header: Callable[[], dict[str, Any]], advisor: str,
                   run_id: str) -> None:
    """The run's CSV and, beside it, its prompt book (each pair's winner, whole), once a pair has one;
    until then no book (one left there by another run in this folder is removed: it is not this run's)."""
    rows, book = _ordered(rows), None
    write_results_csv(csv_path, rows)
    try:
        book = run_book(rows, header(), advisor, run_id) if any(r.get(ROW_ENTRY) for r in rows) else None
    except Exception:  # noqa: BLE001 - e.g. a resumed run whose model cannot state its identity: the CSV stands
        log.exception("the prompt book beside %s was not written", csv_path.name)
    write_book(csv_path.parent / book_file_name(csv_path.name), book)


def _merge_run_folder(out_dir: Path, model_name: str, run_id: str, csv_path: Path) -> None:
    """The run folder's OptimalPrompts CSV and its book, from this run's own CSV and book only
    (another run's files in a reused folder may be of another task)."""
    merged = merge_optimal_prompts(out_dir, model_name, run_id=run_id, own_csv=csv_path.name)
    if merged is None:
        return
    book = merged_book(read_results_frame(merged),
                       lambda row: out_dir / book_file_name(results_file_name(model_name, row["advisor"])))
    write_book(out_dir / book_file_name(merged.name), book)


def _publish(summary: RunSummary, context: dict[str, Any], pairs: Sequence[Pair], store: AnswerStore,
             settings: RunSettings) -> None:
    """Write run.json (and the run's report), keep the run in the results folder, log a short summary."""
    from optimize.report import summary_lines

    task_id = settings.task_id or _task_id_of_pairs(pairs)
    record = _run_record(summary, context, task_id, pairs, store, settings.out_dir)
    record.split_units = (settings.task_info or {}).get("split_units")
    record.write(settings.out_dir / RUN_JSON)
    run_report = _write_run_report(record, summary, settings) if settings.report else None
    task = None
    if settings.results_dir is not None:
        from optimize.collect import publish_run

        try:
            task = publish_run(settings.results_dir, record, summary.results_csv, task_info=settings.task_info,
                               report=settings.report, run_report=run_report)
        except Exception:  # noqa: BLE001 - the run's own files are written: publishing is retried by collect
            log.exception("the run was not fully published to %s (its own files in %s are complete)",
                          settings.results_dir, settings.out_dir)
    for line in summary_lines(record, summary.rows, report=run_report, task=task):
        log.info("%s", line)


def _task_id_of_pairs(pairs: Sequence[Pair]) -> str:
    """The task's identity when the caller gave none: its examples as the pairs hold them,
    with no split or metric settings known (``optimize.task_identity``, as the entry point)."""
    examples = sorted((e for p in pairs for e in (*p.train, *p.val, *p.test)), key=lambda e: e.source_row)
    return task_id_from(task_sha256(examples), {}, {})


def _write_run_report(record: RunRecord, summary: RunSummary, settings: RunSettings) -> Path | None:
    from optimize.collect import run_frame
    from optimize.report import write_report

    try:
        return write_report(settings.out_dir / "report.html", [record], run_frame(record, summary.results_csv),
                            title=f"Run {summary.run_id}: {record.optimizer}, advisor {record.advisor}",
                            task_info=settings.task_info, one_run=True)
    except Exception:  # the results are written; a report bug must not fail the run
        log.exception("the run's report was not written")
        return None


def _run_record(summary: RunSummary, context: dict[str, Any], task_id: str, pairs: Sequence[Pair],
                store: AnswerStore, out_dir: Path) -> RunRecord:
    """The run as the results folder and the reports see it (``run.json``)."""

    def total(column: str) -> float:
        return sum(float(r.get(column) or 0) for r in summary.rows)

    rows = {r["doc type question type"]: r for r in summary.rows}
    cost = RunCost(
        advisor_calls=int(total("advisor_calls")),
        advisor_cost_usd=total("advisor_cost_usd"),
        advisor_cost_usd_this_attempt=summary.advisor_cost_usd,
        answer_model_evaluations=int(total("answer_model_evaluations")),
        model_calls_this_attempt=summary.model_calls,
        cache_hits_this_attempt=summary.cache_hits,
        evaluations_this_attempt=summary.evaluations,
    )
    return RunRecord(
        **context,
        task_id=task_id,
        finished_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        elapsed_s=round(summary.elapsed_s, 3),
        out_dir=str(out_dir),
        results_csv=summary.results_csv.name,
        mean_test_cer=None if math.isnan(summary.mean_test_cer) else summary.mean_test_cer,
        failed_pairs=summary.failed_pairs,
        resumed_pairs=summary.resumed_pairs,
        cost=cost,
        advisor_usage=summary.advisor_usage,
        advisor_members=summary.advisor_members,
        answer_model_diagnostics=summary.answer_model_diagnostics,
        pairs={pair.key: _pair_digest(pair, store.trials(summary.run_id, pair.key), rows.get(pair.key) or {})
               for pair in pairs},
    )


def _pair_digest(pair: Pair, records: Sequence[dict[str, Any]], row: dict[str, Any], top_k: int = 5,
                 worst_k: int = 3) -> dict[str, Any]:
    """One pair's story for the reports: best-so-far val CER against evaluations, the best
    full-val candidates, the winner's per-example test CERs and worst test errors with their
    pages, each author's best (a panel's members with their test CER), and the candidates
    disqualified for carrying a test-only answer (left out of the curve and the best)."""
    winner = row.get("optimal prompt")
    disqualified = row.get("disqualified") or []
    excluded = {(d["prompt"], tuple(d.get("demo_rows") or ())) for d in disqualified}
    curve: list[list[float]] = []
    candidates: dict[tuple[str, tuple[str, ...]], dict[str, Any]] = {}
    best, spent, test = math.inf, 0, None
    for rec in records:
        if rec["split"] == "test":
            # The winner's test score comes first; a panel's members' bests may follow it.
            if test is None or (test["prompt"] != winner and rec["prompt"] == winner):
                test = rec
            continue
        used = rec.get("evaluations_so_far")
        spent = spent + rec["n"] if used is None else used  # a record from before the count: approximate
        if rec["split"] == FULL_VAL and rec["n"] == len(pair.val) and candidate_key(rec) not in excluded:
            best = min(best, rec["cer"])
            curve.append([spent, best])
            candidates.setdefault((rec["prompt"], tuple(rec.get("demo_rows") or ())), rec)
    if curve and spent > curve[-1][0]:
        curve.append([spent, best])  # what was spent after the last full-val score
    # Stable sort: on equal CER the earliest first, as ``pick_best`` chooses.
    top = sorted(candidates.values(), key=lambda r: r["cer"])[:top_k]
    predictions = test["predictions"] if test else []
    examples = {e.source_row: e for e in pair.test}
    worst = []
    for p in sorted((p for p in predictions if p["cer"] > 0), key=lambda p: -p["cer"])[:worst_k]:
        example = examples.get(p["row"])
        worst.append({
            "row": p["row"], "answer": p["answer"], "prediction": p["prediction"], "cer": p["cer"],
            "question": example.question if example else "",
            "image": str(example.image) if example else None,
            "bbox": list(example.bbox) if example and example.bbox else None,
        })
    return {
        "n_val": len(pair.val),
        "n_test": len(pair.test),
        "curve": curve,
        "top": [{"prompt": r["prompt"], "val_cer": r["cer"], "origin": r["origin"], "author": r.get("author", ""),
                 "n_demos": r.get("n_demos", 0)} for r in top],
        "test_cers": [p["cer"] for p in predictions],
        "worst": worst,
        "by_author": row.get("by_author") or {},
        # the winner as the prompt book has it (demo images relative to the task CSV's folder)
        "winner": row.get(ROW_ENTRY) or {},
        "disqualified": [{k: d[k] for k in ("prompt", "origin", "val_cer", "reason")} for d in disqualified],
        "status": row.get("status", ""),  # its notes: the split, disqualified candidates, no {question} in the winner
        "error_classes": winner_error_classes(records, winner, len(pair.val)),  # the winner's wrong answers, by kind
    }


@dataclass
class _Judgement:
    """The engine's verdict on one pair after the optimizer returned."""

    best_prompt: Prompt
    best_record: TrialRecord | None
    test_score: Score
    leaks: dict[tuple[str, tuple[str, ...]], str]
    baseline_by_engine: bool  # the optimizer did not score the baseline on full val: the engine did
    by_author: dict[str, dict[str, Any]]
    disqualified: list[dict[str, Any]]


def _run_one_pair(pair: Pair, parts: RunParts, settings: RunSettings, trial_log: _TrialLog, lease: RunLease,
                  bar: Any, data_dir: Path | None, meter: PairMeter) -> tuple[dict[str, Any], dict[str, int]]:
    """Optimize one pair, judge its candidates, score the winner on test: its row and counters."""
    advisor = parts.advisor
    parts.store.clear_trials(settings.run_id, pair.key, lease=lease)  # an unfinished attempt is redone from cache
    cost_at_start = _advisor_cost(advisor)
    records: list[TrialRecord] = []
    listener = _listener(pair.key, trial_log, records, meter.budget, bar,
                         lambda: _advisor_cost(advisor) - cost_at_start, lambda: _advisor_so_far(advisor))
    _optimize(pair, parts, meter, settings.batch_size, listener)
    # The engine's own scoring (not the optimizer's budget): the baseline on val when the
    # optimizer skipped it, the winner (and a panel's members' bests) on test.
    engine = meter.watch(Evaluator(parts.model, parts.store, parts.metric, pair, meter.engine_budget,
                                   settings.batch_size, listener, allow_test=True))
    verdict = _judge(pair, parts, engine, records)
    row = _result_row(pair, parts.optimizer.name, verdict, winner_entry(pair, verdict.best_prompt, data_dir))
    row.update(meter.row_totals())  # every attempt's evaluations, advisor calls and dollars
    return row, meter.this_attempt()


def _optimize(pair: Pair, parts: RunParts, meter: PairMeter, batch_size: int | None, listener: Any) -> None:
    """Let the optimizer work on ``pair`` (its evaluator counted by ``meter``).

    The optimizer sees the pair without its test split and without paths to the task's
    files; its evaluator holds the pair's train and val only, so nothing it can reach
    names a test example. The evaluator and the advisor view are closed when optimize()
    returns (calls in flight are finished and counted first).
    """
    advisor, replies = parts.advisor, ReplyLedger()
    view = AdvisorView(advisor, replies) if advisor is not None else None
    with shown_pair(pair) as (visible, shown_of):
        evaluator = meter.watch(Evaluator(
            parts.model, parts.store, parts.metric, dataclasses.replace(pair, test=()), meter.budget, batch_size,
            listener, shown=shown_of, attribution=_attribution(parts.optimizer, advisor, replies),
            paid=meter.paid_keys), optimizer=True)
        try:
            parts.optimizer.optimize(visible, evaluator, view)
        except BudgetExhausted as err:
            log.info("pair %r: %s; keeping the best prompt found so far", pair.key, err)
        finally:
            evaluator.close()
            if view is not None:
                view.close()


def _judge(pair: Pair, parts: RunParts, engine: Evaluator, records: list[TrialRecord]) -> _Judgement:
    """The winner among full-val scores (the baseline scored first if it was not), scored on test."""
    baseline_by_engine = not _baseline_scored(records, len(pair.val))
    if baseline_by_engine:
        engine.score(baseline_prompt(), pair.val)
    leaks = test_answer_leaks(records, pair, metric_normalizer(parts.metric))
    best_prompt, best_record = pick_best(records, len(pair.val), leaks)
    test_score = engine.score(best_prompt, pair.test)
    members = {m.name for m in parts.advisor.members()} if _is_panel(parts.advisor) else set()
    by_author = _best_by_author(records, len(pair.val), best_record, test_score.cer,
                                engine if members else None, pair, members, leaks)
    return _Judgement(best_prompt, best_record, test_score, leaks, baseline_by_engine, by_author,
                      _disqualified(records, leaks))


def _result_row(pair: Pair, optimizer_name: str, verdict: _Judgement, winner: Any) -> dict[str, Any]:
    """The pair's results row (its cost columns are added by the caller)."""
    best_prompt, test_score = verdict.best_prompt, verdict.test_score
    ci_low, ci_high = bootstrap_interval([r.cer for r in test_score.results])
    return {
        "doc type question type": pair.key,
        "optimal prompt": best_prompt.text,
        "cer": test_score.cer,
        "cer_ci_low": ci_low,
        "cer_ci_high": ci_high,
        "val_cer": verdict.best_record.cer if verdict.best_record else math.nan,
        "exact_match": test_score.exact_match,
        "n_train": len(pair.train),
        "n_val": len(pair.val),
        "n_test": len(pair.test),
        "optimizer": optimizer_name,
        "origin": best_prompt.origin,
        "author": best_prompt.provenance.author,
        "n_demos": n_demos(best_prompt),
        "demos": winner.demos_text(),
        "status": _status(pair, verdict),
        "by_author": verdict.by_author,
        # the winner exactly as scored (text, demos with image hashes): the prompt book's entry
        ROW_ENTRY: entry_json(winner),
        "disqualified": verdict.disqualified,
    }


def _status(pair: Pair, verdict: _Judgement) -> str:
    status = "ok" if verdict.best_record else "no candidate was scored on the full val split (budget?): " \
        "baseline reported"
    if verdict.baseline_by_engine:
        status = f"{status}; the optimizer did not score the baseline on val: the engine did"
    if verdict.leaks:
        status = f"{status}; {len(verdict.leaks)} candidate(s) disqualified: a test-only answer in the text"
    status += winner_note(pair, verdict.best_prompt)  # logged as a warning too
    if pair.split_note:
        status = f"{status}; {pair.split_note}"
    return status


def _baseline_scored(records: Sequence[TrialRecord], n_val: int) -> bool:
    """Whether the baseline (the data set's question, no demos) has a full-val score."""
    text = baseline_prompt().text
    return any(r.on_full(FULL_VAL, n_val) and r.data["prompt"] == text and not r.data["n_demos"] for r in records)


def _disqualified(records: Sequence[TrialRecord], leaks: Mapping[tuple[str, tuple[str, ...]], str],
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


def _is_panel(advisor: Advisor | None) -> bool:
    return advisor is not None and len(advisor.members()) > 1


def _attribution(optimizer: Optimizer, advisor: Advisor | None, replies: ReplyLedger) -> Attribution:
    """Who the optimizer's prompts may be credited to: the advisors (a panel's members: only for
    text that came out of their own ``replies``), or itself."""
    return Attribution.of(optimizer.name, (m.name for m in advisor.members()) if advisor is not None else (),
                          replies if _is_panel(advisor) else None)


def _best_by_author(records: Sequence[TrialRecord], n_val: int, winner: TrialRecord | None,
                    winner_test_cer: float, tester: Evaluator | None, pair: Pair, members: set[str] = frozenset(),
                    disqualified: Mapping[tuple[str, tuple[str, ...]], str] | None = None,
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


def _listener(key: str, trial_log: _TrialLog, records: list[TrialRecord], budget: Budget, bar: Any,
              cost_so_far: Any, advisor_so_far: Any = lambda: None) -> Any:
    """The evaluator's score listener. Built apart so its closure holds the pair's name,
    never the pair itself (whose test split the optimizer must not reach)."""

    def listener(prompt: Prompt, split: str, score: Score) -> None:
        records.append(TrialRecord(prompt, trial_log.record(key, prompt, split, score, cost_so_far(), budget.used)))
        val = [r.cer for r in records if r.split == FULL_VAL]
        bar.set_postfix_str(progress_text(key, len(records), min(val) if val else None, budget.used, budget.limit,
                                          *(advisor_so_far() or (None, None))))

    return listener


def _advisor_cost(advisor: Advisor | None) -> float:
    """Dollars charged to the run's advisor budget so far (cached replies at their original cost)."""
    return advisor.charges().usd if advisor is not None else 0.0


def _advisor_so_far(advisor: Advisor | None) -> tuple[int, float] | None:
    """The run's advisor calls and dollars so far (the progress line); None without an advisor."""
    if advisor is None:
        return None
    charges = advisor.charges()
    return charges.calls, charges.usd


def _ordered(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda r: r["doc type question type"])
