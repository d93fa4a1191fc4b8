"""Benchmark the optimizers on one generated data set, same pairs, budget and splits.

Every optimizer runs through the real CLI (``python -m optimize``) with the CPU answer
model and the local advisor, on the same pairs, answer-model budget and split seeds,
sharing one answer store (so a prompt two optimizers both try is computed once: wall
times are therefore order-dependent; evaluations are not). Prints, per optimizer and
pair, held-out test CER with a bootstrap 95 % interval over test examples, the median
and the CER clipped at 1 beside the mean, answer-model evaluations, advisor calls and
tokens, and wall time; writes everything to ``--out`` as JSON.

    .venv/bin/python scripts/bench_optimizers.py --per-class 20 --budget 60 --seeds 0 \\
        --optimizers baseline manual advisor critic critic_racing fewshot chain

Generating the data set (``--per-class``) comes first; the runs' wall times are in
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from optimize.stats import bootstrap_interval, clipped_mean, median  # noqa: E402 - after the path

DEFAULT_PAIRS = ["Паспорт Фамилия", "Паспорт Код подразделения", "СНИЛС Номер СНИЛС", "Счёт Сумма",
                 "СТС Регистрационный знак", "Водительское удостоверение Категории"]

# optimizer name in the table -> CLI overrides
CRITIC = ["optimizer.rounds=3", "optimizer.patience=2"]
FEWSHOT = ["optimizer.random_sets=3", "optimizer.swap_candidates=1"]
OPTIMIZERS = {
    "baseline": ["optimizer=manual", "optimizer.candidates=[]"],
    "manual": ["optimizer=manual"],
    "advisor": ["optimizer=advisor"],
    "critic": ["optimizer=critic", *CRITIC],
    "critic_racing": ["optimizer=critic", *CRITIC, "optimizer.racing=true", "optimizer.minibatch=3"],
    "fewshot": ["optimizer=fewshot", *FEWSHOT],
    "retrieval": ["optimizer=retrieval"],
    "chain": ["optimizer=chain", *(o.replace("optimizer.", "optimizer.steps.s1_critic.") for o in CRITIC),
              *(o.replace("optimizer.", "optimizer.steps.s2_fewshot.") for o in FEWSHOT)],
    # the frameworks our users know, on the same engine, budget, split and advisor
    "textgrad": ["optimizer=textgrad", "optimizer.steps=3"],
    "dspy_mipro": ["optimizer=dspy", "optimizer.method=mipro", "optimizer.num_candidates=3", "optimizer.num_trials=4"],
    "dspy_gepa": ["optimizer=dspy", "optimizer.method=gepa", "optimizer.max_metric_calls=40"],
}


def test_cers(run_dir: Path) -> dict[str, list[float]]:
    """Per pair, the per-example test CERs of the chosen prompt (from trials.jsonl)."""
    out: dict[str, list[float]] = {}
    for line in (run_dir / "trials.jsonl").read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if record["split"] == "test":
            out[record["pair"]] = [p["cer"] for p in record["predictions"]]
    return out


def result_rows(csv_path: Path) -> list[dict]:
    """The run's results rows, numbers as numbers (the CSV holds text; empty cells are None)."""
    numeric = {"val_cer": float, "answer_model_evaluations": int, "advisor_calls": int, "n_demos": int}
    with csv_path.open(encoding="utf-8", newline="") as fh:
        return [{k: (numeric[k](v) if v else None) if k in numeric else v for k, v in row.items()}
                for row in csv.DictReader(fh)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPO / "outputs/bench_data")
    parser.add_argument("--per-class", type=int, default=20, help="documents per class to generate")
    parser.add_argument("--csv", type=Path, default=None,
                        help="a task CSV to use instead of generated data (e.g. ../shared/data/sroie_dev/annotation.csv)")
    parser.add_argument("--pairs", nargs="+", default=DEFAULT_PAIRS)
    parser.add_argument("--budget", type=int, default=60, help="answer-model evaluations per pair")
    parser.add_argument("--advisor-calls", type=int, default=None, help="advisor calls per run (null: none)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--optimizers", nargs="+", default=list(OPTIMIZERS))
    parser.add_argument("--out", type=Path, default=REPO / "outputs/bench_optimizers.json")
    parser.add_argument("--store", type=Path, default=REPO / "outputs/bench_store.sqlite")
    parser.add_argument("--extra", nargs="*", default=[], help="more CLI overrides for every run")
    parser.add_argument("--demo-cost", metavar="PAIR", help="only measure s/query and CER with k retrieved demos on PAIR")
    parser.add_argument("--ks", nargs="+", type=int, default=[0, 1, 2, 3, 4], help="--demo-cost: demo counts")
    parser.add_argument("--demo-chars", nargs="+", type=int, default=[0, 300],
                        help="--demo-cost: demo page text around the answer, in characters (0: whole page)")
    parser.add_argument("--examples", type=int, default=8, help="--demo-cost: val examples asked about")
    parser.add_argument("--table", nargs="+", type=Path, metavar="JSON", help="only print the table of result files")
    args = parser.parse_args()

    if args.table:
        table_from_runs(args.table)
        return
    task_csv = args.csv.resolve() if args.csv else args.data / "task.csv"
    if not task_csv.is_file():
        subprocess.run([sys.executable, "scripts/make_demo_data.py", "--out", str(args.data),
                        "--per-class", str(args.per_class)], cwd=REPO, check=True)
    if args.demo_cost:
        demo_cost(task_csv, args.demo_cost, args.ks, args.demo_chars, args.examples, tuple(args.extra))
        return
    pairs_arg = "pairs=[" + ",".join(f'"{p}"' for p in args.pairs) + "]"
    results: dict = {"args": {k: str(v) for k, v in vars(args).items()}, "runs": []}
    for seed in args.seeds:
        for name in args.optimizers:
            run_dir = args.out.parent / "bench_runs" / f"seed{seed}" / name
            cmd = [sys.executable, "-m", "optimize", "task=csv", f"task.csv={task_csv}", pairs_arg,
                   f"split.seed={seed}", f"budget.evaluations_per_pair={args.budget}",
                   f"budget.advisor_calls={'null' if args.advisor_calls is None else args.advisor_calls}",
                   f"paths.store={args.store}", f"paths.results_dir={run_dir / 'results'}",
                   f"hydra.run.dir={run_dir}", "progress=false", *OPTIMIZERS[name], *args.extra]
            started = time.monotonic()
            proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
            wall = time.monotonic() - started
            if proc.returncode not in (0, 1) or not (run_dir / "run.json").is_file():
                print(f"{name} seed {seed}: exit {proc.returncode}\n{proc.stderr[-2000:]}", file=sys.stderr)
                continue
            summary = json.loads((run_dir / "run.json").read_text())
            cers = test_cers(run_dir)
            for row in result_rows(run_dir / summary["results_csv"]):
                values = cers.get(row["doc type question type"], [])
                if not values:
                    continue
                lo, hi = bootstrap_interval(values)
                results["runs"].append({
                    "optimizer": name, "seed": seed, "pair": row["doc type question type"],
                    "test_cer": statistics.mean(values), "ci95": [lo, hi], "median": median(values),
                    "test_cers": values,
                    "clipped_mean": clipped_mean(values), "val_cer": row.get("val_cer"),
                    "evaluations": row.get("answer_model_evaluations"), "advisor_calls": row.get("advisor_calls"),
                    "prompt": row.get("optimal prompt"), "author": row.get("author"), "n_demos": row.get("n_demos"),
                })
            usage = summary.get("advisor_usage") or {}
            results["runs"].append({"optimizer": name, "seed": seed, "pair": "*", "wall_s": round(wall, 1),
                                    "fresh_model_calls": summary["cost"]["model_calls_this_attempt"],
                                    "advisor_usage": usage})
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(results, ensure_ascii=False, indent=1))
            print(f"done {name} seed {seed} in {wall:.0f} s", flush=True)
    print_table(results)


def demo_cost(task_csv: Path, pair_key: str, ks: list[int], demo_chars: list[int], n_examples: int = 8,
              extra: tuple[str, ...] = ()) -> None:
    """Seconds per ocr_llm query and mean CER with k demos retrieved by OCR text, whole demo
    pages against pages cut around their answers (``model.demo_chars``).

    Queries run as the evaluator sends them: one prompt over the first ``n_examples`` val
    examples (split as ``extra`` says, e.g. ``split.val=0.2``), the pages' OCR done first (not
    what is measured). k = 0 is the instruction alone; its first pass reads each page,
    so it is timed once more after (a later prompt on cached pages).
    """
    import tempfile

    from hydra.utils import instantiate

    from optimize.answer_store import AnswerStore
    from prompt_opt_api import Prompt
    from prompt_opt_api.demo_retrieval import OCR_TFIDF, DemoRetrieval, PageSignatures
    from tasks.cer_metric import CerMetric
    from tasks.docqa_csv import load_task
    from tasks.pair_splits import SplitConfig, split_pairs
    from scripts.default_models import model_config

    split = dict(o.removeprefix("split.").split("=") for o in extra if o.startswith("split."))
    config = SplitConfig(**{k: (int(v) if k == "seed" else None if v == "null" else float(v)) for k, v in split.items()})
    pair = split_pairs(load_task(task_csv).examples, config, only=[pair_key])[0][0]
    examples = list(pair.val)[:n_examples]
    instruction = "{question} Reply with the value only, exactly as printed."
    metric = CerMetric()
    with tempfile.TemporaryDirectory() as tmp:
        store = AnswerStore(Path(tmp) / "s.sqlite")
        for chars in demo_chars:
            model = instantiate(model_config(demo_chars=chars or None))
            model.use_cache(store)
            for ex in [*examples, *pair.train]:
                model.ocr_text(ex)
            signatures = PageSignatures(model.page_text)
            for k in ks:
                if k == 0 and chars != demo_chars[0]:
                    continue  # no demos: nothing to cut
                rule = DemoRetrieval(k, pair.train, OCR_TFIDF) if k else None
                for repeat in range(2 if k == 0 else 1):
                    prompt = Prompt(instruction + " " * repeat, retrieval=rule)
                    requests = [(prompt.for_example(ex, signatures), ex) for ex in examples]
                    started = time.monotonic()
                    answers = model.answer(requests)
                    per_query = (time.monotonic() - started) / len(examples)
                    cer = [metric.cer(ex.answer, a) for ex, a in zip(examples, answers)]
                    label = "whole pages" if not chars else f"{chars} chars around the answer"
                    note = " (pages cached)" if repeat else ""
                    print(f"demo cost {pair_key}: k={k} demos, {label}{note}: {per_query:.2f} s/query, "
                          f"mean CER {statistics.mean(cer):.3f}, clipped {clipped_mean(cer):.3f}", flush=True)
            model.close()


def print_table(results: dict) -> None:
    """One line per optimizer (test CER pooled over every test example of every pair and
    seed, bootstrap 95 % interval over those examples), then one line per pair."""
    rows = [r for r in results["runs"] if r["pair"] != "*"]
    totals = {(r["optimizer"], r["seed"]): r for r in results["runs"] if r["pair"] == "*"}
    names = list(dict.fromkeys(r["optimizer"] for r in rows))
    print("\noptimizer      | test CER mean [95% CI over examples] | median | clipped at 1 | evaluations | "
          "advisor calls (tokens) | wall")
    for name in names:
        mine = [r for r in rows if r["optimizer"] == name]
        pooled = [v for r in mine for v in r.get("test_cers", [r["test_cer"]])]
        lo, hi = bootstrap_interval(pooled)
        tot = [totals[k] for k in totals if k[0] == name]
        usage = [t.get("advisor_usage") or {} for t in tot]
        calls = sum(u.get("calls", 0) + u.get("cached_calls", 0) for u in usage)
        tokens = sum(u.get("prompt_tokens", 0) + u.get("completion_tokens", 0) for u in usage)
        print(f"{name:14s} | {statistics.mean(pooled):.3f} [{lo:.3f}, {hi:.3f}] (n={len(pooled)}) | "
              f"{median(pooled):.3f} | {clipped_mean(pooled):.3f} | "
              f"{sum(int(r['evaluations'] or 0) for r in mine)} | {calls} ({tokens}) | "
              f"{sum(t['wall_s'] for t in tot):.0f} s")
    print("\nper pair: test CER [95% CI] (val CER) evaluations, author of the winner")
    for pair in dict.fromkeys(r["pair"] for r in rows):
        print(f"  {pair}")
        for r in [r for r in rows if r["pair"] == pair]:
            val = float(r["val_cer"]) if r["val_cer"] not in (None, "") else float("nan")
            print(f"    {r['optimizer']:14s} s{r['seed']} {r['test_cer']:.3f} [{r['ci95'][0]:.3f}, {r['ci95'][1]:.3f}] "
                  f"(val {val:.3f}) evals {r['evaluations']} author {r['author']}")


def table_from_runs(files: list[Path]) -> None:
    """Print one table from several result files (e.g. a benchmark resumed in parts)."""
    merged: dict = {"runs": []}
    for path in files:
        merged["runs"] += json.loads(path.read_text(encoding="utf-8"))["runs"]
    print_table(merged)


if __name__ == "__main__":
    main()
