"""Held-out test CER of a run's chosen prompts against the data set's own question, per pair.

Scores the question (``{question}``) on each pair's test split through the evaluator
(answers come from the run's store where cached) and compares with the ``cer`` column of
the run's results CSV; prints means, medians, clipped means, a paired bootstrap 95 %
interval of the mean difference over pairs, and how many pairs got better or worse.

    .venv/bin/python scripts/compare_with_question.py RUN_DIR/<model>_sep_<advisor>.csv --store STORE
"""

from __future__ import annotations

import argparse
import csv
import random
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results_csv", type=Path)
    parser.add_argument("--store", required=True, type=Path)
    parser.add_argument("--task", type=Path, default=REPO / "tasks/demo/task.csv")
    parser.add_argument("--split-seed", type=int, default=0)
    args = parser.parse_args()

    from hydra.utils import instantiate

    from optimize.answer_store import AnswerStore
    from optimize.evaluator import Evaluator
    from prompt_opt_api import baseline_prompt
    from tasks.cer_metric import CerMetric
    from tasks.docqa_csv import load_task
    from tasks.pair_splits import SplitConfig, split_pairs
    from tests.real_models import model_config

    with args.results_csv.open(encoding="utf-8") as fh:
        chosen = {r["doc type question type"]: float(r["cer"]) for r in csv.DictReader(fh) if r.get("cer")}
    pairs, _ = split_pairs(load_task(args.task).examples, SplitConfig(seed=args.split_seed))
    store = AnswerStore(args.store)
    model = instantiate(model_config())
    model.use_cache(store)
    question, optimized = [], []
    try:
        for pair in pairs:
            if pair.key in chosen:
                tester = Evaluator(model, store, CerMetric(), pair, allow_test=True)
                question.append(tester.score(baseline_prompt(), pair.test).cer)
                optimized.append(chosen[pair.key])
    finally:
        model.close()
    diffs = [o - q for o, q in zip(optimized, question)]
    rng = random.Random(0)
    means = sorted(statistics.mean(rng.choice(diffs) for _ in diffs) for _ in range(2000))
    for name, values in (("question", question), ("optimized", optimized)):
        print(f"{name:9s} test CER mean {statistics.mean(values):.3f} median {statistics.median(values):.3f} "
              f"clipped at 1 {statistics.mean(min(v, 1.0) for v in values):.3f} ({len(values)} pairs)")
    print(f"optimized - question: mean {statistics.mean(diffs):+.3f}, paired bootstrap 95% CI over pairs "
          f"[{means[50]:+.3f}, {means[1949]:+.3f}]; better {sum(d < 0 for d in diffs)}, "
          f"equal {sum(d == 0 for d in diffs)}, worse {sum(d > 0 for d in diffs)}")


if __name__ == "__main__":
    main()
