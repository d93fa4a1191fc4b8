"""Hydra entry point: ``python -m optimize [overrides]``.

Composes the config, instantiates task, model, optimizer and advisor, runs every
pair and returns the mean val CER of the winners (``optimize.sweep_value``: what Hydra
sweepers minimize; test CER stays in the results and never selects).
Heavy libraries are imported only by the components that need them.
"""

from __future__ import annotations

import logging
import math
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

REPO_ROOT = Path(__file__).resolve().parent.parent
log = logging.getLogger("optimize")

if not OmegaConf.has_resolver("repo_root"):
    # Lets configs name bundled files independently of the working directory.
    OmegaConf.register_new_resolver("repo_root", lambda: str(REPO_ROOT))


def run(cfg: DictConfig, out_dir: Path) -> tuple[float, list[str]]:
    """Run the job described by ``cfg``, writing into ``out_dir``.

    Returns:
        (the sweep value: mean val CER of the winners, ``inf`` if a pair failed; failed pair names).

    Exits:
        2 on bad input or a missing advisor (before any model is loaded); 3 when an
        answer model or advisor cannot be used or reached (a missing or rejected key,
        a dead endpoint), or another live process runs the same run id.
    """
    from optimize.ocr_language import resolve_ocr_language
    from optimize.run_settings import run_id_of, settings_of
    from optimize.sweep_value import sweep_value
    from optimize.task_identity import describe_task

    task, pairs, too_small, audit = _load_task_or_exit(cfg)
    if note := resolve_ocr_language(cfg, task.examples, pairs):  # before the run id, the plan and the model
        log.info("%s", note)
    optimizer = _instantiate_or_exit(cfg, "optimizer")
    advisor = _advisor_or_exit(cfg, optimizer)
    if cfg.get("plan"):
        print_plan(cfg, pairs, too_small, optimizer, advisor, audit)
        return float("nan"), []
    _check_ready_or_exit(advisor)
    task_info = {**describe_task(cfg, task), "split_units": audit.to_json()}
    settings = settings_of(cfg, out_dir, run_id=run_id_of(cfg, task_info["task_sha256"], optimizer.uses_advisor),
                           advisor_name=advisor.name if advisor is not None else "none",  # a panel names itself
                           task_info=task_info, sweep_job=_sweep_job())
    summary = _run_or_exit(cfg, pairs, too_small, optimizer, advisor, settings)
    value = sweep_value(summary.rows)
    _log_outcome(summary, len(pairs), value, _selection_note(cfg, task))
    return value, summary.failed_pairs


def _load_task_or_exit(cfg: DictConfig):
    """The task, its pairs and their split units, checked with the configuration and the output
    paths before any model is loaded: bad input, or a split that is not by document, fails in
    seconds (exit 2)."""
    from hydra.utils import instantiate

    from optimize.config_check import check_config
    from optimize.output_paths import check_output_paths
    from optimize.split_check import check_split
    from prompt_opt_api import TaskError
    from prompt_opt_api.page_units import NEAR_DUPLICATE_COSINE

    try:
        check_config(cfg)
        if not cfg.get("plan"):  # a plan writes nothing
            check_output_paths(cfg.paths.store, cfg.paths.get("results_dir"))
        task = instantiate(cfg.task, _partial_=True)()  # called here so its errors are not wrapped
        pairs, too_small = _instantiate_or_exit(cfg, "split").split(task.examples, list(cfg.pairs or task.selection))
        audit = check_split(pairs, cfg.split.get("near_duplicate_cosine", NEAR_DUPLICATE_COSINE),
                            cfg.split.get("_target_", ""))
    except TaskError as err:
        log.error("%s", err)
        sys.exit(2)
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


def _advisor_or_exit(cfg: DictConfig, optimizer):
    """The advisor, for an optimizer that uses one; None otherwise. An optimizer that writes
    no prompt gets no advisor and writes under advisor "none": a results file named after
    an advisor holds only runs in which that advisor wrote."""
    if not optimizer.uses_advisor:
        return None
    if not cfg.advisor.get("_target_"):
        log.error("optimizer=%s needs an advisor: pass advisor=local (or gpt4o, deepseek, claude, gemini, "
                  "qwen2_vl_72b)", optimizer.name)
        sys.exit(2)
    return _instantiate_or_exit(cfg, "advisor")


def _check_ready_or_exit(advisor) -> None:
    """A missing key fails here (exit 3), before any model is loaded."""
    from prompt_opt_api import EndpointUnusable

    if advisor is None:
        return
    try:
        advisor.check_ready()
    except EndpointUnusable as err:
        log.error("%s", err)
        sys.exit(3)


def _run_or_exit(cfg: DictConfig, pairs, too_small, optimizer, advisor, settings):
    """Build the model, the store and the advisor session, run the pairs, close them all.
    An unusable endpoint or a run held by another process exits 3."""
    from hydra.utils import instantiate

    from optimize.advisor_session import AdvisorSession
    from optimize.answer_store import AnswerStore, RunLeaseHeld
    from optimize.run_loop import run_pairs
    from optimize.run_settings import RunParts
    from prompt_opt_api import EndpointUnusable

    model = _instantiate_or_exit(cfg, "model")  # construction is cheap by contract: weights load on first use
    store = AnswerStore(cfg.paths.store)
    model.use_cache(store)
    session = None if advisor is None else AdvisorSession(
        advisor, store, max_calls=cfg.budget.get("advisor_calls"), max_usd=cfg.budget.get("advisor_usd"),
        call_log=settings.out_dir / "advisor_calls.jsonl")
    try:
        return run_pairs(pairs, too_small, RunParts(model, optimizer, session, store, instantiate(cfg.metric)),
                         settings)
    except (EndpointUnusable, RunLeaseHeld) as err:
        log.error("%s", err)  # one line: the fix, not a traceback
        sys.exit(3)
    finally:
        model.close()
        if session is not None:
            session.close()
        store.close()


def _log_outcome(summary, n_pairs: int, value: float, selection_note: str = "") -> None:
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


def _instantiate_or_exit(cfg: DictConfig, group: str):
    """Build ``cfg[group]``; a value its class refuses (a plugin's own range rule) exits 2 naming the group."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    try:
        return instantiate(cfg[group])
    except InstantiationException as err:
        cause = err.__cause__ or err
        log.error("bad configuration: %s (%s): %s", group, cfg[group].get("_target_"),
                  f"{type(cause).__name__}: {cause}".splitlines()[0])
        sys.exit(2)


def _sweep_job() -> tuple[int | None, bool]:
    """(this job's number when it may run beside others: a sweep on a parallel launcher, so its
    progress line is labelled and gets its own terminal line, else None; whether it is a sweep)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return None, False
    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode != RunMode.MULTIRUN:
        return None, False
    launcher = str(hydra_cfg.launcher.get("_target_", ""))
    return (None if launcher.endswith("BasicLauncher") else int(hydra_cfg.job.num)), True


def print_plan(cfg: DictConfig, pairs, too_small, optimizer, advisor, audit) -> None:
    """``plan=true``: print what the run would do and cost; no model is loaded or called."""
    from hydra.utils import instantiate

    from optimize.answer_store import AnswerStore
    from optimize.plan import make_plan

    model = instantiate(cfg.model)  # construction is cheap by contract: only its cache identity is read
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
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from optimize.failed_jobs import record_failed_job

    hydra_cfg = HydraConfig.get()
    out_dir = Path(hydra_cfg.runtime.output_dir)
    value, failed = run(cfg, out_dir)
    if failed:  # the process exits 1 after the whole sweep (optimize/sweep_status.py)
        record_failed_job(out_dir, Path(hydra_cfg.sweep.dir) if hydra_cfg.mode == RunMode.MULTIRUN else None)
    return value if not math.isnan(value) else float("inf")


if __name__ == "__main__":
    main()
    from optimize.failed_jobs import failed_jobs

    sys.exit(1 if failed_jobs else 0)
