"""The run loop: each pair is optimized on train/val, judged, its winner scored on test, and
the results rewritten.

``run_pairs`` reads top to bottom as the recipe. The optimizer sees the pair without its test
split (``optimize.shown_pair``), through an evaluator and an advisor view that close when
``optimize()`` returns. The engine then picks the winner (``optimize.selection``), scores it on
test and writes the row (``optimize.run_outputs``); every score is logged as it happens
(``optimize.trial_log``). A finished pair is stored under the run id, so re-running the same
command after a kill skips it and serves every computed answer from the cache. One pair's
failure is recorded in its row and the run goes on; an unreachable endpoint stops the run; the
run id is held under a lease so two processes never run it at once.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path

from optimize.advisor_session import AdvisorSession, AdvisorView
from optimize.attribution import Attribution, ReplyLedger
from optimize.answer_store import RunLease, RunLeaseHeld
from optimize.evaluator import Evaluator
from optimize.plugin_errors import log_pair_failure, winner_note
from optimize.pair_attempt import PairMeter
from optimize.progress import RunProgress, progress_text
from optimize.run_books import book_header, entry_json, winner_entry
from optimize.result_row import CER_COLUMN, ResultRow, ordered
from optimize.results_files import results_file_name
from optimize.run_mean import run_mean
from optimize.run_outputs import merge_run_folder, publish, write_results
from optimize.run_record import TrialRecord
from optimize.run_settings import RunParts, RunSettings
from optimize.run_summary import RunSummary
from optimize.selection import Judgement, is_panel, judge
from optimize.shown_pair import shown_pair
from optimize.stats import bootstrap_interval
from optimize.trial_log import ScoreListener, TrialLog, n_demos, score_listener
from prompt_opt_api import Advisor, BudgetExhausted, EndpointUnusable, Optimizer, Pair
from prompt_opt_api.prompt_book import BookEntry

log = logging.getLogger(__name__)

__all__ = ["RunSummary", "run_pairs"]


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
    merge_run_folder(settings.out_dir, parts.model.name, settings.run_id, attempt.csv_path)
    summary = attempt.summary(time.monotonic() - started)
    publish(summary, attempt.context, pairs, parts, settings)
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
        self.trial_log = TrialLog(parts.store, settings.run_id, settings.out_dir / "trials.jsonl", self.context,
                                  self.lease)
        self.rows = [ResultRow(key, status=f"skipped: {reason}", optimizer=name) for key, reason in too_small]
        self.totals = {"model_calls": 0, "cache_hits": 0, "evaluations": 0}
        self.resumed: list[str] = []
        self.failed: list[str] = []
        self.bar = RunProgress(n_pairs, settings.progress, settings.progress_every_s, settings.progress_job)

    def run_pair(self, pair: Pair) -> None:
        """Run ``pair``, or take it as an earlier attempt finished it; then rewrite the results."""
        advisor, store, run_id = self.parts.advisor, self.parts.store, self.settings.run_id
        self.bar.set_postfix_str(progress_text(pair.key, 0, None, 0, self.settings.max_evaluations_per_pair,
                                               *(_advisor_so_far(advisor) or (None, None))))
        stored = store.finished_result(run_id, pair.key)
        if stored is not None:
            done = ResultRow.from_json(stored)
            self.trial_log.replay(store.trials(run_id, pair.key))
            if isinstance(advisor, AdvisorSession):  # the run's advisor budget counts what it spent
                advisor.charge_finished(done.advisor_calls or 0, done.advisor_cost_usd or 0.0)
            self.rows.append(done)
            self.resumed.append(pair.key)
            log.info("pair %r already finished in an earlier attempt of this run: not redone", pair.key)
        else:
            self.rows.append(self._run_new(pair))
        # Rewritten after each pair: a crash later keeps every finished pair on disk.
        write_results(self.csv_path, self.rows, self.header, self.settings.advisor_name, run_id)
        self.bar.update(1)

    def _run_new(self, pair: Pair) -> ResultRow:
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
            status = f"failed: {log_pair_failure(pair.key, err, self.parts)}"  # where, and if a retry helps
            return ResultRow(pair.key, status=status, optimizer=self.parts.optimizer.name, n_train=len(pair.train),
                             n_val=len(pair.val), n_test=len(pair.test),
                             **meter.failed(self.parts.store, self.settings.run_id, pair.key, self.lease, self.totals))
        self.parts.store.mark_finished(self.settings.run_id, pair.key, row.to_json(), lease=self.lease)
        for key in self.totals:
            self.totals[key] += stats[key]
        return row

    def close(self) -> None:
        self.bar.close()
        self.trial_log.close()
        self.lease.release()
        write_results(self.csv_path, self.rows, self.header, self.settings.advisor_name, self.settings.run_id)

    def summary(self, elapsed_s: float) -> RunSummary:
        rows, advisor = ordered(self.rows), self.parts.advisor
        test_mean = run_mean(rows, CER_COLUMN).value  # None when a pair failed: failing cannot lower it
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
                             if is_panel(advisor) else None),
        )


def _run_one_pair(pair: Pair, parts: RunParts, settings: RunSettings, trial_log: TrialLog, lease: RunLease,
                  bar: RunProgress, data_dir: Path | None, meter: PairMeter) -> tuple[ResultRow, dict[str, int]]:
    """Optimize one pair, judge its candidates, score the winner on test: its row and counters."""
    advisor = parts.advisor
    parts.store.clear_trials(settings.run_id, pair.key, lease=lease)  # an unfinished attempt is redone from cache
    cost_at_start = _advisor_cost(advisor)
    records: list[TrialRecord] = []
    listener = score_listener(pair.key, trial_log, records, meter.budget, bar,
                              lambda: _advisor_cost(advisor) - cost_at_start, lambda: _advisor_so_far(advisor))
    _optimize(pair, parts, meter, settings.batch_size, listener)
    # The engine's own scoring (not the optimizer's budget): the baseline on val when the
    # optimizer skipped it, the winner (and a panel's members' bests) on test.
    engine = meter.watch(Evaluator(parts.model, parts.store, parts.metric, pair, meter.engine_budget,
                                   settings.batch_size, listener, allow_test=True))
    verdict = judge(pair, records, engine, parts.metric, parts.advisor)
    # the cost columns count every attempt's evaluations, advisor calls and dollars
    row = _result_row(pair, parts.optimizer.name, verdict, winner_entry(pair, verdict.best_prompt, data_dir),
                      meter.row_totals())
    return row, meter.this_attempt()


def _optimize(pair: Pair, parts: RunParts, meter: PairMeter, batch_size: int | None, listener: ScoreListener) -> None:
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


def _result_row(pair: Pair, optimizer_name: str, verdict: Judgement, winner: BookEntry,
                costs: dict[str, int | float]) -> ResultRow:
    """The pair's results row; ``costs``: its cost columns (``PairMeter.row_totals``)."""
    best_prompt, test_score = verdict.best_prompt, verdict.test_score
    ci_low, ci_high = bootstrap_interval([r.cer for r in test_score.results])
    return ResultRow(
        pair=pair.key,
        prompt=best_prompt.text,
        cer=test_score.cer,
        cer_ci_low=ci_low,
        cer_ci_high=ci_high,
        val_cer=verdict.best_record.cer if verdict.best_record else math.nan,
        exact_match=test_score.exact_match,
        n_train=len(pair.train),
        n_val=len(pair.val),
        n_test=len(pair.test),
        optimizer=optimizer_name,
        origin=best_prompt.origin,
        author=best_prompt.provenance.author,
        n_demos=n_demos(best_prompt),
        demos=winner.demos_text(),
        status=_status(pair, verdict),
        by_author=verdict.by_author,
        book_entry=entry_json(winner),  # the winner exactly as scored (text, demos with image hashes)
        disqualified=verdict.disqualified,
        **costs,
    )


def _status(pair: Pair, verdict: Judgement) -> str:
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


def _attribution(optimizer: Optimizer, advisor: Advisor | None, replies: ReplyLedger) -> Attribution:
    """Who the optimizer's prompts may be credited to: the advisors (a panel's members: only for
    text that came out of their own ``replies``), or itself."""
    return Attribution.of(optimizer.name, (m.name for m in advisor.members()) if advisor is not None else (),
                          replies if is_panel(advisor) else None)


def _advisor_cost(advisor: Advisor | None) -> float:
    """Dollars charged to the run's advisor budget so far (cached replies at their original cost)."""
    return advisor.charges().usd if advisor is not None else 0.0


def _advisor_so_far(advisor: Advisor | None) -> tuple[int, float] | None:
    """The run's advisor calls and dollars so far (the progress line); None without an advisor."""
    if advisor is None:
        return None
    charges = advisor.charges()
    return charges.calls, charges.usd

