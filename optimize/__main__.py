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


def run_id_of(cfg: DictConfig, task_sha256: str) -> str:
    """Identity of a run: everything that changes results, nothing that only moves files."""
    from optimize.answer_store import cache_key

    data = OmegaConf.to_container(cfg, resolve=True)
    for volatile in ("paths", "hydra", "progress"):
        data.pop(volatile, None)
    return cache_key({"config": data, "task_sha256": task_sha256})[:16]


def run(cfg: DictConfig, out_dir: Path) -> float:
    """Run the job described by ``cfg``, writing into ``out_dir``; return mean test CER."""
    from hydra.utils import instantiate

    from optimize.answer_store import AnswerStore, cache_key
    from optimize.run_loop import run_pairs
    from tasks.docqa_csv import DatasetError
    from tasks.pair_splits import PairSelectionError, SplitConfig, split_pairs

    # Validate the data before any model is loaded: bad input fails in seconds.
    try:
        task = instantiate(cfg.task, _partial_=True)()  # called here so its errors are not wrapped
        pairs, too_small = split_pairs(task.examples, SplitConfig(**cfg.split), list(cfg.pairs or []))
    except (DatasetError, PairSelectionError) as err:
        log.error("%s", err)
        sys.exit(2)
    task_sha = cache_key({"rows": [(e.source_row.split(", ", 1)[-1], e.image_sha256, e.question, e.answer,
                                    e.doc_class, e.question_type) for e in task.examples]})
    log.info("task %s: %d examples, %d pairs to run", task.csv_path, len(task.examples), len(pairs))

    model = instantiate(cfg.model)
    optimizer = instantiate(cfg.optimizer)
    advisor = instantiate(cfg.advisor) if cfg.advisor.get("_target_") else None
    store = AnswerStore(cfg.paths.store)
    model.use_store(store)
    try:
        summary = run_pairs(
            pairs=pairs,
            too_small=too_small,
            model=model,
            optimizer=optimizer,
            advisor=advisor,
            advisor_name=cfg.advisor.name,
            store=store,
            metric=instantiate(cfg.metric),
            out_dir=out_dir,
            run_id=run_id_of(cfg, task_sha),
            max_evaluations_per_pair=cfg.budget.evaluations_per_pair,
            batch_size=cfg.batch_size,
            results_dir=Path(cfg.paths.results_dir) if cfg.paths.results_dir else None,
            progress=cfg.progress,
        )
    finally:
        model.close()
        if advisor is not None:
            advisor.close()
        store.close()
    log.info(
        "mean test CER %.4f over %d pairs; %d model calls, %d cache hits; results: %s",
        summary.mean_test_cer, len(pairs), summary.model_calls, summary.cache_hits, summary.results_csv,
    )
    return summary.mean_test_cer


@hydra.main(version_base=None, config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> float:
    from hydra.core.hydra_config import HydraConfig

    value = run(cfg, Path(HydraConfig.get().runtime.output_dir))
    return value if not math.isnan(value) else float("inf")


if __name__ == "__main__":
    main()
