"""The OCR ceiling: the held-out CER of a perfect reader of the page text the answer model reads.

For an answer model that reads text (``AnswerModel.page_text``: Tesseract's text for
``ocr_llm``), each test example's **best-span CER** is the lowest CER (the run's metric,
``tasks.cer_metric.CerMetric``, with its normalization) between the example's answer and
any contiguous span of that page's text: the score of a reader that always copies the
best-matching piece of the page. The span search is ``optimize.best_span`` (exact, not
sampled; its docstring defines the spans), the per-pair ceiling ``optimize.ocr_ceiling``, the
same code a run uses for the ceiling it writes into ``run.json`` and its report.

The task, the split (``PairSplitter(...).split(examples, only)``, as the config builds it),
the answer model and the store come from the same Hydra config and overrides a run uses,
so the ceiling is measured on the run's own test examples; the page text comes from the
store's OCR cache (Tesseract runs only for pages not read yet; the LLM is never loaded).
For a model that reads pixels there is no page text and no such ceiling: it says so and
exits 0.

    .venv/bin/python scripts/ocr_ceiling.py task=csv task.csv=../shared/data/sroie_dev/annotation.csv \\
        split.val=0.2 split.seed=0 paths.store=outputs/sroie_eng/store.sqlite
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from optimize.best_span import SpanMatch, best_span as _best_span  # noqa: E402 - after the path above
from optimize.ocr_ceiling import CeilingPoint, no_ceiling_reason, split_ceiling  # noqa: E402

__all__ = ["Ceiling", "CeilingPoint", "SpanMatch", "best_span", "ceiling_of_pairs", "compose_config", "describe",
           "measure_ceiling", "split_of"]


def best_span(answer: str, page: str, metric=None) -> SpanMatch:
    """The lowest CER between ``answer`` and any span of ``page`` (``optimize.best_span``), under
    ``metric`` (default: the engine's default ``CerMetric``, case folded) and its normalization.

    Raises:
        ValueError: the answer is empty after normalization (the metric has no CER for it).
    """
    from tasks.cer_metric import CerMetric

    metric = metric or CerMetric()
    return _best_span(answer, page, metric, metric.normalize)


@dataclass(frozen=True)
class Ceiling:
    """The ceiling for one split seed: per pair, each test example's best span; or why none applies."""

    seed: int
    model: str
    applies: bool
    reason: str = ""
    pairs: dict[str, list[CeilingPoint]] | None = None

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> Ceiling:
        pairs = data.get("pairs")
        return cls(seed=int(data["seed"]), model=data.get("model", ""), applies=bool(data["applies"]),
                   reason=data.get("reason", ""),
                   pairs=None if pairs is None else {k: [CeilingPoint(**p) for p in v] for k, v in pairs.items()})


def ceiling_of_pairs(pairs: Sequence, page_text: Callable, metric) -> dict[str, list[CeilingPoint]]:
    """Per pair, the best-span CER of every test example's page text."""
    return {pair.key: split_ceiling(pair.test, page_text, metric).points for pair in pairs}


def compose_config(overrides: Sequence[str]):
    """The config ``python -m optimize OVERRIDES`` composes (conf/config.yaml), with the resolvers
    a run registers; ``hydra.searchpath=[...]`` reaches other config folders (e.g. tests/conf)."""
    from hydra import compose, initialize_config_dir

    import optimize.__main__  # noqa: F401 - registers the ${repo_root:} resolver the configs use

    with initialize_config_dir(version_base=None, config_dir=str(REPO / "conf")):
        return compose("config", overrides=list(overrides))


def require(cfg, *groups: str) -> None:
    """Every value of these config groups set.

    Raises:
        MissingMandatoryValue: naming the first key left ``???`` (e.g. ``task.csv``).
    """
    from omegaconf import OmegaConf
    from omegaconf.errors import MissingMandatoryValue

    missing = sorted(k for k in OmegaConf.missing_keys(cfg) if k.split(".")[0] in groups)
    if missing:
        raise MissingMandatoryValue(f"{missing[0]} has no value: pass {missing[0]}=...")


def split_of(cfg, pairs: Sequence[str] = ()) -> list:
    """The run's pairs with their train/val/test examples, as the engine splits them."""
    from hydra.utils import instantiate

    from optimize.ocr_language import resolve_ocr_language

    require(cfg, "task", "split")
    task = instantiate(cfg.task, _partial_=True)()
    split = instantiate(cfg.split).split(task.examples, list(pairs) or list(cfg.pairs or []))[0]
    resolve_ocr_language(cfg, task.examples, split)  # model.tesseract_lang=auto: the languages a run reads with
    return split


def measure_ceiling(cfg, pairs: Sequence[str] = ()) -> Ceiling:
    """The ceiling of ``cfg``'s split seed: its model's page text, cached in ``cfg.paths.store``."""
    from hydra.utils import instantiate

    from optimize.answer_store import AnswerStore
    from prompt_opt_api import reads_text

    require(cfg, "model", "metric", "paths")
    seed = int(cfg.split.seed)
    split = split_of(cfg, pairs)
    model = instantiate(cfg.model)  # construction is cheap by contract: the LLM is never loaded here
    try:
        if not reads_text(model):
            return Ceiling(seed, model.name, False, no_ceiling_reason(model.name))
        store = AnswerStore(cfg.paths.store)
        model.use_cache(store)
        try:
            return Ceiling(seed, model.name, True, pairs=ceiling_of_pairs(split, model.page_text,
                                                                          instantiate(cfg.metric)))
        finally:
            store.close()
    finally:
        model.close()


def describe(ceiling: Ceiling) -> list[str]:
    """The ceiling per field and over all fields: mean best-span CER [bootstrap 95 % interval]."""
    from optimize.stats import bootstrap_interval

    if not ceiling.applies:
        return [f"seed {ceiling.seed}: {ceiling.reason}"]
    lines, pooled = [], []
    for key, points in sorted(ceiling.pairs.items()):
        values = [p.cer for p in points]
        pooled += values
        lo, hi = bootstrap_interval(values)
        lines.append(f"seed {ceiling.seed} {key}: best-span CER {statistics.mean(values):.3f} "
                     f"[{lo:.3f}, {hi:.3f}] (n={len(values)})")
    lo, hi = bootstrap_interval(pooled)
    lines.append(f"seed {ceiling.seed} all fields: best-span CER {statistics.mean(pooled):.3f} "
                 f"[{lo:.3f}, {hi:.3f}] (n={len(pooled)})")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("overrides", nargs="*", help="the run's Hydra overrides (task=csv task.csv=... split.seed=...)")
    parser.add_argument("--seeds", nargs="+", type=int, help="split seeds (default: the config's split.seed)")
    args = parser.parse_args(argv)
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from prompt_opt_api import TaskError

    for seed in args.seeds or [None]:
        overrides = [*args.overrides, *([] if seed is None else [f"split.seed={seed}"])]
        try:
            ceiling = measure_ceiling(compose_config(overrides))
        except (TaskError, HydraException, OmegaConfBaseException) as err:  # before any page is read
            print(f"ocr_ceiling: {str(err).splitlines()[0]}", file=sys.stderr)
            return 2
        print("\n".join(describe(ceiling)), flush=True)
        if not ceiling.applies:
            return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
