"""What a run is (its run id) and how it is carried out (``RunSettings``), from the configuration.

The run id names everything that changes a run's answers and choices, and nothing else:
a resumed run finds its finished pairs only under the same id, so a setting that changes
how fast or from where answers come (threads, KV-cache size, batch size, timeouts, where
weights are stored) must not change it, and neither does the advisor of an optimizer
that uses none (such a run writes under advisor ``none`` whatever ``advisor=`` says).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from optimize.answer_store import AnswerStore
    from prompt_opt_api import AnswerModel, Metric, Optimizer

REPO_ROOT = Path(__file__).resolve().parent.parent

# Engine settings that say where files go, what is shown, how long to wait, or how many
# requests go in one model call: not what a run is.
NOT_THE_RUN = ("paths", "hydra", "progress", "progress_every_s", "lease_wait_s", "report", "plan", "batch_size")
# Model and advisor settings (at any depth: a panel's members, a local server, its weights)
# that change how fast or from where answers and replies come, never what they are. The
# answer and reply caches leave them out of their keys for the same reason.
EXECUTION_ONLY = frozenset({
    "batch_size", "n_threads", "kv_cache_mb", "concurrency",  # throughput
    "assumed_seconds_per_query", "assumed_seconds_per_call",  # the run plan's guesses
    "timeout_s", "num_retries", "retry_initial_wait_s",  # patience with an endpoint
    "store_dir", "local_path", "hf_repo", "hf_filename", "pypi_parts", "pypi_version",  # where weights come from
})
# Budget settings that only an advisor spends.
ADVISOR_BUDGET = ("advisor_calls", "advisor_usd")


@dataclass(frozen=True)
class RunSettings:
    """How ``run_pairs`` carries out a run and where its results go."""

    out_dir: Path  # the run folder (Hydra's output dir)
    run_id: str  # identity of the run (``run_id_of``); resuming needs the same one
    advisor_name: str = "none"  # names the results file
    max_evaluations_per_pair: int | None = None  # the optimizer's budget per pair (test scoring not counted)
    batch_size: int | None = None  # requests per model call (None: the model's preference)
    # where runs meet (``optimize.collect``): kept under <task_id>/runs/<run_id>/ (None: out_dir only)
    results_dir: Path | None = None
    # the progress line (``optimize.progress``): None in place on a terminal, logged every
    # progress_every_s otherwise; True in place; False none
    progress: bool | None = None
    progress_every_s: float = 60.0
    progress_job: int | None = None  # the job's number in a parallel sweep (labels its line)
    lease_wait_s: float = 0.0  # how long to wait when another live process runs the same run id
    task_id: str | None = None  # ``optimize.task_identity``; None: from the pairs' examples alone
    task_info: dict[str, Any] | None = None  # what the task is, for task.json and the reports
    report: bool = False  # write the HTML reports (the run's and its task's)
    # the configuration that builds the model, written into the prompt books so that
    # ``optimize.apply`` and the runtime rebuild the same model
    model_config: dict[str, Any] | None = None


@dataclass
class RunParts:
    """What a run works with, built from the configuration."""

    model: AnswerModel
    optimizer: Optimizer
    advisor: Any  # an ``AdvisorSession``, or None for an optimizer that uses no advisor
    store: AnswerStore
    metric: Metric


def code_version() -> str:
    """The package version plus a digest of our packages' source, so a run id changes with the code.

    A resumed run must never mix pairs finished by different code; answers stay cached
    across code changes (their keys name the model, not our code).
    """
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


def run_id_of(cfg: DictConfig, task_sha256: str, uses_advisor: bool = True) -> str:
    """Identity of a run: everything that changes its results, nothing that only moves files
    or changes speed; the advisor and its budget only when the optimizer uses one."""
    from omegaconf import OmegaConf

    from prompt_opt_api import cache_key

    data = OmegaConf.to_container(cfg, resolve=True)
    for key in NOT_THE_RUN:
        data.pop(key, None)
    for group in ("model", "advisor"):
        if group in data:
            data[group] = _without_execution_settings(data[group])
    if not uses_advisor:
        data.pop("advisor", None)
        for key in ADVISOR_BUDGET:
            (data.get("budget") or {}).pop(key, None)
    return cache_key({"config": data, "task_sha256": task_sha256, "code": code_version()})[:16]


def _without_execution_settings(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _without_execution_settings(v) for k, v in node.items() if k not in EXECUTION_ONLY}
    if isinstance(node, list):
        return [_without_execution_settings(v) for v in node]
    return node


def portable_config(node: DictConfig) -> dict:
    """``node`` resolved, less the settings that name this machine's folders (``${paths.*}``):
    a prompt book travels, and the component's own default (or an override) takes their place."""
    from omegaconf import OmegaConf

    resolved = OmegaConf.to_container(node, resolve=True)
    raw = OmegaConf.to_container(node, resolve=False)

    def strip(resolved_part, raw_part):
        raw_part = raw_part if isinstance(raw_part, dict) else {}
        if isinstance(resolved_part, dict):
            return {k: strip(v, raw_part.get(k)) for k, v in resolved_part.items()
                    if not (isinstance(raw_part.get(k), str) and raw_part[k].startswith("${paths."))}
        return resolved_part

    return strip(resolved, raw)


def lease_wait_of(cfg: DictConfig, in_sweep: bool) -> float:
    """``lease_wait_s``; null waits as long as it takes in a sweep (two of its jobs may be one
    run, e.g. ``optimizer=manual,fewshot advisor=none,local``: the later one waits, then finds
    the pairs finished) and refuses at once otherwise."""
    value = cfg.get("lease_wait_s")
    if value is None:
        return float("inf") if in_sweep else 0.0
    return float(value)


def settings_of(cfg: DictConfig, out_dir: Path, *, run_id: str, advisor_name: str, task_info: dict[str, Any],
                sweep_job: tuple[int | None, bool] = (None, False)) -> RunSettings:
    """The ``RunSettings`` that ``cfg`` asks for; ``task_info`` from ``optimize.task_identity.describe_task``,
    ``sweep_job`` (the job's number on a parallel launcher or None, whether it is a sweep's job)."""
    job, in_sweep = sweep_job
    return RunSettings(
        out_dir=out_dir,
        run_id=run_id,
        advisor_name=advisor_name,
        max_evaluations_per_pair=cfg.budget.evaluations_per_pair,
        batch_size=cfg.batch_size,
        results_dir=Path(cfg.paths.results_dir) if cfg.paths.results_dir else None,
        progress=cfg.progress,
        progress_every_s=cfg.get("progress_every_s", 60.0),
        progress_job=job,
        lease_wait_s=lease_wait_of(cfg, in_sweep),
        task_id=task_info["task_id"],
        task_info=task_info,
        report=bool(cfg.get("report", True)),
        model_config=portable_config(cfg.model),
    )
