"""Hydra entry point: ``python -m optimize [overrides]``.

Composes the config, instantiates task, model, optimizer and advisor, runs every
pair and returns the mean held-out test CER (so Hydra sweepers can minimize it).
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


def code_version() -> str:
    """The package version plus a digest of our packages' source, so a run id changes with the code.

    A resumed run must never mix pairs finished by different code; answers stay cached
    across code changes (their keys name the model, not our code).
    """
    import hashlib
    from importlib import metadata

    try:
        version = metadata.version("vlm-prompt-opt")
    except metadata.PackageNotFoundError:
        version = "unknown"
    digest = hashlib.sha256()
    for package in ("prompt_opt_api", "optimize", "optimizers", "models", "tasks"):
        for path in sorted((REPO_ROOT / package).rglob("*.py")):
            digest.update(path.relative_to(REPO_ROOT).as_posix().encode() + b"\0" + path.read_bytes())
    return f"{version}+{digest.hexdigest()[:12]}"


def run_id_of(cfg: DictConfig, task_sha256: str) -> str:
    """Identity of a run: everything that changes results, nothing that only moves files."""
    from prompt_opt_api import cache_key

    data = OmegaConf.to_container(cfg, resolve=True)
    for volatile in ("paths", "hydra", "progress", "progress_every_s", "lease_wait_s", "report", "plan"):
        data.pop(volatile, None)
    return cache_key({"config": data, "task_sha256": task_sha256, "code": code_version()})[:16]


def task_id_of(cfg: DictConfig, task_sha256: str) -> str:
    """Identity of a task (``optimize.task_identity``): its data, split and metric settings."""
    from optimize.task_identity import task_id

    return task_id(task_sha256, *(OmegaConf.to_container(cfg[key], resolve=True) for key in ("split", "metric")))


def _task_info(cfg: DictConfig, task, task_sha256: str) -> dict:
    return {"task_id": task_id_of(cfg, task_sha256), "task_sha256": task_sha256, "csv": str(task.csv_path),
            "examples": len(task.examples),
            # how the task was loaded (less its CSV): `optimize.apply` loads a CSV the same way
            "loader": {k: v for k, v in OmegaConf.to_container(cfg.task, resolve=True).items() if k != "csv"},
            **{key: OmegaConf.to_container(cfg[key], resolve=True) for key in ("split", "metric")}}


def portable_config(node: DictConfig) -> dict:
    """``node`` resolved, less the settings that name this machine's folders (``${paths.*}``):
    a prompt book travels, and the component's own default (or an override) takes their place."""
    resolved = OmegaConf.to_container(node, resolve=True)
    raw = OmegaConf.to_container(node, resolve=False)

    def strip(resolved_part, raw_part):
        raw_part = raw_part if isinstance(raw_part, dict) else {}
        if isinstance(resolved_part, dict):
            return {k: strip(v, raw_part.get(k)) for k, v in resolved_part.items()
                    if not (isinstance(raw_part.get(k), str) and raw_part[k].startswith("${paths."))}
        return resolved_part

    return strip(resolved, raw)


def run(cfg: DictConfig, out_dir: Path) -> tuple[float, list[str]]:
    """Run the job described by ``cfg``, writing into ``out_dir``.

    Returns:
        (mean test CER, failed pair names).

    Exits:
        2 on bad input or a missing advisor (before any model is loaded); 3 when an
        answer model or advisor cannot be used or reached (a missing or rejected key,
        a dead endpoint), or another live process runs the same run id.
    """
    from hydra.utils import instantiate

    from optimize.advisor_session import AdvisorSession
    from optimize.answer_store import AnswerStore, RunLeaseHeld
    from optimize.config_check import check_config
    from optimize.run_loop import run_pairs
    from optimize.task_identity import task_sha256
    from prompt_opt_api import EndpointUnusable, TaskError

    # Validate the configuration and the data before any model is loaded: bad input fails in seconds.
    try:
        check_config(cfg)
        task = instantiate(cfg.task, _partial_=True)()  # called here so its errors are not wrapped
        pairs, too_small = instantiate(cfg.split).split(task.examples, list(cfg.pairs or []))
    except TaskError as err:
        log.error("%s", err)
        sys.exit(2)
    task_sha = task_sha256(task.examples)
    log.info("task %s: %d examples, %d pairs to run", task.csv_path, len(task.examples), len(pairs))

    optimizer = _instantiate_or_exit(cfg, "optimizer")
    # An optimizer that writes no prompt gets no advisor and writes under advisor "none":
    # a results file named after an advisor holds only runs in which that advisor wrote.
    wants_advisor = optimizer.uses_advisor
    if wants_advisor and not cfg.advisor.get("_target_"):
        log.error("optimizer=%s needs an advisor: pass advisor=local (or gpt4o, deepseek, claude, gemini, "
                  "qwen2_vl_72b)", optimizer.name)
        sys.exit(2)
    inner_advisor = _instantiate_or_exit(cfg, "advisor") if wants_advisor else None
    advisor_name = inner_advisor.name if inner_advisor is not None else "none"  # a panel names itself
    if cfg.get("plan"):
        print_plan(cfg, pairs, too_small, optimizer, inner_advisor)
        return float("nan"), []
    if inner_advisor is not None:
        try:
            inner_advisor.check_ready()  # a missing key fails here, before any model is loaded
        except EndpointUnusable as err:
            log.error("%s", err)
            sys.exit(3)
    model = _instantiate_or_exit(cfg, "model")  # construction is cheap by contract: weights load on first use
    store = AnswerStore(cfg.paths.store)
    model.use_cache(store)
    advisor = None
    if inner_advisor is not None:
        advisor = AdvisorSession(inner_advisor, store, max_calls=cfg.budget.get("advisor_calls"),
                                 max_usd=cfg.budget.get("advisor_usd"), call_log=out_dir / "advisor_calls.jsonl")
    try:
        summary = run_pairs(
            pairs=pairs,
            too_small=too_small,
            model=model,
            optimizer=optimizer,
            advisor=advisor,
            advisor_name=advisor_name,
            store=store,
            metric=instantiate(cfg.metric),
            out_dir=out_dir,
            run_id=run_id_of(cfg, task_sha),
            max_evaluations_per_pair=cfg.budget.evaluations_per_pair,
            batch_size=cfg.batch_size,
            results_dir=Path(cfg.paths.results_dir) if cfg.paths.results_dir else None,
            progress=cfg.progress,
            progress_every_s=cfg.get("progress_every_s", 60.0),
            progress_job=_parallel_job_number(),
            lease_wait_s=cfg.get("lease_wait_s") or 0.0,
            task_id=task_id_of(cfg, task_sha),
            task_info=_task_info(cfg, task, task_sha),
            report=bool(cfg.get("report", True)),
            model_config=portable_config(cfg.model),
        )
    except (EndpointUnusable, RunLeaseHeld) as err:
        log.error("%s", err)  # one line: the fix, not a traceback
        sys.exit(3)
    finally:
        model.close()
        if advisor is not None:
            advisor.close()
        store.close()
    log.info(
        "mean test CER %.4f over %d pairs; %d model calls, %d cache hits; results: %s",
        summary.mean_test_cer, len(pairs), summary.model_calls, summary.cache_hits, summary.results_csv,
    )
    if summary.failed_pairs:
        log.error("%d pair(s) failed: %s; re-run the same command to retry only those",
                  len(summary.failed_pairs), ", ".join(summary.failed_pairs))
    return summary.mean_test_cer, summary.failed_pairs


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


def _parallel_job_number() -> int | None:
    """This job's number when it may run beside others (a sweep on a parallel launcher), so
    its progress line is labelled and gets its own terminal line; None otherwise."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return None
    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode != RunMode.MULTIRUN:
        return None
    launcher = str(hydra_cfg.launcher.get("_target_", ""))
    return None if launcher.endswith("BasicLauncher") else int(hydra_cfg.job.num)


def print_plan(cfg: DictConfig, pairs, too_small, optimizer, advisor) -> None:
    """``plan=true``: print what the run would do and cost; no model is loaded or called."""
    from hydra.utils import instantiate

    from optimize.answer_store import AnswerStore
    from optimize.plan import make_plan

    model = instantiate(cfg.model)  # construction is cheap by contract: only its cache identity is read
    store = AnswerStore.open_read_only(cfg.paths.store)
    try:
        plan = make_plan(pairs, too_small, model, optimizer, advisor, store, cfg.budget.evaluations_per_pair,
                         cfg.budget.get("advisor_calls"), cfg.budget.get("advisor_usd"))
    finally:
        if store is not None:
            store.close()
    print(plan.render(), flush=True)


@hydra.main(version_base=None, config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> float:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from optimize.sweep_status import record_failed_job

    hydra_cfg = HydraConfig.get()
    out_dir = Path(hydra_cfg.runtime.output_dir)
    value, failed = run(cfg, out_dir)
    if failed:  # the process exits 1 after the whole sweep (optimize/sweep_status.py)
        record_failed_job(out_dir, Path(hydra_cfg.sweep.dir) if hydra_cfg.mode == RunMode.MULTIRUN else None)
    return value if not math.isnan(value) else float("inf")


if __name__ == "__main__":
    main()
    from optimize.sweep_status import failed_jobs

    sys.exit(1 if failed_jobs else 0)
