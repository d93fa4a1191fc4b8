"""Held-out test CER of a run's chosen prompts against the data set's own question, per pair.

Scores the question (``{question}``) on each pair's test split through the evaluator
(answers come from the run's store where cached) and compares with the ``cer`` column of
the run's results CSV. Everything that decides those numbers comes from the run itself
(its ``.hydra/config.yaml``): the task, the answer model, the split fractions and seed,
the metric and the store. Prints means, medians, means clipped at 1, a paired bootstrap
95 % interval of the mean difference over pairs, and how many pairs got better or worse.

    .venv/bin/python scripts/compare_with_question.py RUN_DIR [--store STORE]
    .venv/bin/python scripts/compare_with_question.py RUN_DIR/<model>_sep_<advisor>.csv
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def results_csv_of(run: Path) -> Path:
    """The run's ``<model>_sep_<advisor>.csv`` (``run`` is the run folder or that file)."""
    if run.is_file():
        return run
    found = [p for p in sorted(run.glob("*_sep_*.csv")) if not p.stem.endswith("_sep_OptimalPrompts")]
    if len(found) != 1:
        sys.exit(f"{run}: expected one <model>_sep_<advisor>.csv, found {[p.name for p in found]}: name it")
    return found[0]


def run_config(run_dir: Path):
    """The run's composed config, with the resolvers a run registers (``${repo_root:}``)."""
    from omegaconf import OmegaConf

    import optimize.__main__  # noqa: F401 - registers the ${repo_root:} resolver the configs use

    path = run_dir / ".hydra" / "config.yaml"
    if not path.is_file():
        sys.exit(f"{run_dir}: no .hydra/config.yaml (not a run folder of `python -m optimize`)")
    return OmegaConf.load(path)


def question_and_chosen(cfg, chosen: dict[str, float], store_path: Path) -> tuple[list[float], list[float]]:
    """Per pair in ``chosen``: the question's test CER and the chosen prompt's (from the CSV)."""
    from hydra.utils import instantiate

    from optimize.answer_store import AnswerStore
    from optimize.evaluator import Evaluator
    from optimize.ocr_language import resolve_ocr_language
    from prompt_opt_api import baseline_prompt

    task = instantiate(cfg.task, _partial_=True)()
    pairs, _ = instantiate(cfg.split).split(task.examples, list(cfg.pairs or []))
    resolve_ocr_language(cfg, task.examples, pairs)  # model.tesseract_lang=auto, as the run resolved it
    metric = instantiate(cfg.metric)
    store = AnswerStore(store_path)
    model = instantiate(cfg.model)
    model.use_cache(store)
    question, optimized = [], []
    try:
        for pair in pairs:
            if pair.key in chosen:
                tester = Evaluator(model, store, metric, pair, allow_test=True)
                question.append(tester.score(baseline_prompt(), pair.test).cer)
                optimized.append(chosen[pair.key])
    finally:
        model.close()
        store.close()
    return question, optimized


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="a run folder, or the results CSV in one")
    parser.add_argument("--store", type=Path, default=None, help="answer store (default: the run's paths.store)")
    args = parser.parse_args()

    from optimize.stats import clipped_mean, median, paired_bootstrap_interval

    results_csv = results_csv_of(args.run)
    cfg = run_config(results_csv.parent)
    with results_csv.open(encoding="utf-8") as fh:
        chosen = {r["doc type question type"]: float(r["cer"]) for r in csv.DictReader(fh) if r.get("cer")}
    question, optimized = question_and_chosen(cfg, chosen, args.store or Path(cfg.paths.store))
    if not question:
        sys.exit(f"{results_csv}: no pair with a test CER")
    diffs = [o - q for o, q in zip(optimized, question)]
    low, high = paired_bootstrap_interval(optimized, question)
    for name, values in (("question", question), ("optimized", optimized)):
        print(f"{name:9s} test CER mean {sum(values) / len(values):.3f} median {median(values):.3f} "
              f"clipped at 1 {clipped_mean(values):.3f} ({len(values)} pairs)")
    print(f"optimized - question: mean {sum(diffs) / len(diffs):+.3f}, paired bootstrap 95% CI over pairs "
          f"[{low:+.3f}, {high:+.3f}]; better {sum(d < 0 for d in diffs)}, "
          f"equal {sum(d == 0 for d in diffs)}, worse {sum(d > 0 for d in diffs)}")


if __name__ == "__main__":
    main()
