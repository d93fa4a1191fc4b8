"""Hydra entry point: ``python -m optimize [overrides]``.

Composes the config, instantiates task, model, optimizer and advisor, runs every
pair and returns the mean val CER of the winners (``optimize.sweep_value``: what Hydra
sweepers minimize; test CER stays in the results and never selects). ``main`` turns the two
ways a run cannot start or go on into one log line and an exit code: ``BadInput`` (2) and
``Unavailable`` (3). Heavy libraries are imported only by the components that need them.
"""

from __future__ import annotations

import logging
import math
import sys
from collections.abc import Sequence
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from optimize.advisor_session import AdvisorSession
from optimize.answer_store import AnswerStore, RunLeaseHeld
from optimize.config_check import check_config
from optimize.failed_jobs import failed_jobs, record_failed_job
from optimize.answer_cap import resolve_answer_cap
from optimize.ocr_language import resolve_ocr_language
from optimize.output_paths import check_output_paths
from optimize.plan import make_plan
from optimize.run_loop import RunSummary, run_pairs
from optimize.run_settings import RunParts, RunSettings, run_id_of, settings_of
from optimize.split_check import SplitAudit, check_split
from optimize.sweep_value import sweep_value
from optimize.task_identity import describe_task
from prompt_opt_api import Advisor, EndpointUnusable, Optimizer, Pair, TaskError
from prompt_opt_api.page_units import NEAR_DUPLICATE_COSINE

REPO_ROOT = Path(__file__).resolve().parent.parent
log = logging.getLogger("optimize")

if not OmegaConf.has_resolver("repo_root"):
    # Lets configs name bundled files independently of the working directory.
    OmegaConf.register_new_resolver("repo_root", lambda: str(REPO_ROOT))


class BadInput(Exception):
    """Input the run cannot use: the task, a configuration value, an output path, a missing
    advisor. Exit 2, before any model is loaded."""


class Unavailable(Exception):
    """An answer model or advisor that cannot be used or reached (a missing or rejected key, a
    dead endpoint), or a run id another live process holds. Exit 3."""


EXIT_CODES = {BadInput: 2, Unavailable: 3}


def run(cfg: DictConfig, out_dir: Path) -> tuple[float, list[str]]:
    """Run the job described by ``cfg``, writing into ``out_dir``.

    Returns:
        (the sweep value: mean val CER of the winners, ``inf`` if a pair failed; failed pair names).

    Raises:
        BadInput: bad input or a missing advisor (before any model is loaded).
        Unavailable: an answer model or advisor cannot be used or reached (a missing or
            rejected key, a dead endpoint), or another live process runs the same run id.
    """
    task, pairs, too_small, audit = _load_task(cfg)
    for note in (resolve_ocr_language(cfg, task.examples, pairs), resolve_answer_cap(cfg, pairs)):
        if note:  # resolved before the run id, the plan and the model read the configuration
            log.info("%s", note)
    optimizer = _instantiate(cfg, "optimizer")
    advisor = _advisor(cfg, optimizer)
    if cfg.get("plan"):
        print_plan(cfg, pairs, too_small, optimizer, advisor, audit)
        return float("nan"), []
    _check_ready(advisor)
    task_info = {**describe_task(cfg, task), "split_units": audit.to_json()}
    settings = settings_of(cfg, out_dir, run_id=run_id_of(cfg, task_info["task_sha256"], optimizer.uses_advisor),
                           advisor_name=advisor.name if advisor is not None else "none",  # a panel names itself
                           task_info=task_info, sweep_job=_sweep_job())
    summary = _run_pairs(cfg, pairs, too_small, optimizer, advisor, settings)
    value = sweep_value(summary.rows)
    _log_outcome(summary, len(pairs), value, _selection_note(cfg, task))
    return value, summary.failed_pairs


def _load_task(cfg: DictConfig):
    """The task, its pairs and their split units, checked with the configuration and the output
    paths before any model is loaded: bad input, or a split that is not by document, fails in
    seconds (``BadInput``)."""
    try:
        check_config(cfg)
        if not cfg.get("plan"):  # a plan writes nothing
            check_output_paths(cfg.paths.store, cfg.paths.get("results_dir"))
        task = instantiate(cfg.task, _partial_=True)()  # called here so its errors are not wrapped
        pairs, too_small = _instantiate(cfg, "split").split(task.examples, list(cfg.pairs or task.selection))
        audit = check_split(pairs, cfg.split.get("near_duplicate_cosine", NEAR_DUPLICATE_COSINE),
                            cfg.split.get("_target_", ""))
    except TaskError as err:
        raise BadInput(str(err)) from err
    log.info("task %s: %d examples, %d pairs to run; split: %s", task.csv_path, len(task.examples), len(pairs),
             audit.summary)
    if note := _selection_note(cfg, task):
        log.info("%s", note)
    return task, pairs, too_small, audit


def _selection_note(cfg: DictConfig, task) -> str:
    """What to type for every pair, when the run took the task config's own selection."""
    if cfg.pairs or not task.selection:
        return ""
    n_all = len({(e.doc_class, e.question_type) for e in task.examples})
    return (f"pairs: the task's selection, {len(task.selection)} of its {n_all} (task.pairs); "
            f"every pair: add task.pairs=[]")


def _advisor(cfg: DictConfig, optimizer: Optimizer) -> Advisor | None:
    """The advisor, for an optimizer that uses one; None otherwise. An optimizer that writes
    no prompt gets no advisor and writes under advisor "none": a results file named after
    an advisor holds only runs in which that advisor wrote."""
    if not optimizer.uses_advisor:
        return None
    if not cfg.advisor.get("_target_"):
        raise BadInput(f"optimizer={optimizer.name} needs an advisor: pass advisor=local (or gpt4o, deepseek, "
                       "claude, gemini, qwen2_vl_72b)")
    return _instantiate(cfg, "advisor")


def _check_ready(advisor: Advisor | None) -> None:
    """A missing key fails here (``Unavailable``), before any model is loaded."""
    if advisor is None:
        return
    try:
        advisor.check_ready()
    except EndpointUnusable as err:
        raise Unavailable(str(err)) from err


def _run_pairs(cfg: DictConfig, pairs: Sequence[Pair], too_small: Sequence[tuple[str, str]], optimizer: Optimizer,
               advisor: Advisor | None, settings: RunSettings) -> RunSummary:
    """Build the model, the store and the advisor session, run the pairs, close them all.
    An unusable endpoint or a run held by another process raises ``Unavailable``."""
    model = _instantiate(cfg, "model")  # construction is cheap by contract: weights load on first use
    store = AnswerStore(cfg.paths.store)
    model.use_cache(store)
    session = None if advisor is None else AdvisorSession(
        advisor, store, max_calls=cfg.budget.get("advisor_calls"), max_usd=cfg.budget.get("advisor_usd"),
        call_log=settings.out_dir / "advisor_calls.jsonl")
    try:
        return run_pairs(pairs, too_small, RunParts(model, optimizer, session, store, instantiate(cfg.metric)),
                         settings)
    except (EndpointUnusable, RunLeaseHeld) as err:
        raise Unavailable(str(err)) from err
    finally:
        model.close()
        if session is not None:
            session.close()
        store.close()


def _log_outcome(summary: RunSummary, n_pairs: int, value: float, selection_note: str = "") -> None:
    log.info(
        "mean test CER %.4f over %d pairs; returned to a sweeper: %.4f (mean val CER of the winners); "
        "%d model calls, %d cache hits; results: %s",
        summary.mean_test_cer, n_pairs, value, summary.model_calls, summary.cache_hits, summary.results_csv,
    )
    if selection_note:
        log.info("%s", selection_note)
    if summary.failed_pairs:
        log.error("%d pair(s) failed: %s; re-run the same command to retry only those",
                  len(summary.failed_pairs), ", ".join(summary.failed_pairs))


def _instantiate(cfg: DictConfig, group: str):
    """Build ``cfg[group]``; a value its class refuses (a plugin's own range rule) is ``BadInput`` naming the group."""
    try:
        return instantiate(cfg[group])
    except InstantiationException as err:
        cause = err.__cause__ or err
        first_line = f"{type(cause).__name__}: {cause}".splitlines()[0]
        raise BadInput(f"bad configuration: {group} ({cfg[group].get('_target_')}): {first_line}") from err


def _sweep_job() -> tuple[int | None, bool]:
    """(this job's number when it may run beside others: a sweep on a parallel launcher, so its
    progress line is labelled and gets its own terminal line, else None; whether it is a sweep)."""
    if not HydraConfig.initialized():
        return None, False
    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode != RunMode.MULTIRUN:
        return None, False
    launcher = str(hydra_cfg.launcher.get("_target_", ""))
    return (None if launcher.endswith("BasicLauncher") else int(hydra_cfg.job.num)), True


def print_plan(cfg: DictConfig, pairs: Sequence[Pair], too_small: Sequence[tuple[str, str]], optimizer: Optimizer,
               advisor: Advisor | None, audit: SplitAudit) -> None:
    """``plan=true``: print what the run would do and cost; no model is loaded or called."""
    model = _instantiate(cfg, "model")  # construction is cheap by contract: only its cache identity is read
    store = AnswerStore.open_read_only(cfg.paths.store)
    try:
        plan = make_plan(pairs, too_small, model, optimizer, advisor, store, cfg.budget.evaluations_per_pair,
                         cfg.budget.get("advisor_calls"), cfg.budget.get("advisor_usd"))
        plan.split = audit.summary
    finally:
        if store is not None:
            store.close()
    print(plan.render(), flush=True)


@hydra.main(version_base=None, config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> float:
    hydra_cfg = HydraConfig.get()
    out_dir = Path(hydra_cfg.runtime.output_dir)
    try:
        value, failed = run(cfg, out_dir)
    except (BadInput, Unavailable) as err:
        log.error("%s", err)  # one line: the fix, not a traceback
        sys.exit(EXIT_CODES[type(err)])
    if failed:  # the process exits 1 after the whole sweep (optimize/sweep_status.py)
        record_failed_job(out_dir, Path(hydra_cfg.sweep.dir) if hydra_cfg.mode == RunMode.MULTIRUN else None)
    return value if not math.isnan(value) else float("inf")


if __name__ == "__main__":
    main()
    sys.exit(1 if failed_jobs else 0)
