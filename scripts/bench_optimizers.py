"""Benchmark the optimizers on one task, cell by cell, resumable: same pairs, budget, splits and store.

A **cell** is one contender × split seed × pair: one ``python -m optimize`` run with
``pairs=[that pair]`` through the real CLI (the CPU answer model and the local advisor unless
``--extra`` says otherwise), every cell on one shared answer store, so a prompt two
contenders both try is computed once (wall times depend on the order; evaluations do not).
Each cell is written to ``--out`` the moment it finishes, atomically, so a stopped benchmark
loses at most the cell it was running; the next start skips the cells in ``--out`` and runs
the rest, and the store makes the interrupted cell resume cheaply. A cell whose run failed
is recorded as failed and run again on the next start. What a cell holds:
``scripts/bench_results.py``; the tables: ``scripts/bench_table.py``.

Contenders (``--optimizers``, by name; ``name:N`` gives that one a budget of N evaluations a
pair instead of ``--budget``): ``baseline`` (the data set's question), ``manual``, ``fewshot``,
``retrieval``, ``quick`` (the default optimizer), ``critic_quick``, and the others of
``OPTIMIZERS``. ``--ceiling`` also measures the OCR ceiling of each split seed
(``scripts/ocr_ceiling.py``) once, keeps it in ``--out`` and shows it beside the contenders.

    nice -n 5 .venv/bin/python scripts/bench_optimizers.py --csv ../shared/data/sroie_dev/annotation.csv \\
        --pairs "receipt company" "receipt date" "receipt address" "receipt total" --budget 250 --seeds 0 1 \\
        --optimizers baseline manual fewshot retrieval quick critic_quick --ceiling \\
        --extra split.val=0.2 --out outputs/sroie_eng/cells.json --store outputs/sroie_eng/store.sqlite
    .venv/bin/python scripts/bench_optimizers.py --table outputs/sroie_eng/cells.json --ceiling --markdown

Exits 1 when a cell failed (it is run again on the next start); 2 with one line on bad input
(a missing CSV, an unknown pair or contender, a results file of other settings) before any
cell runs, and when a cell's run exits 2 or 3 (bad input, an unusable model or advisor: every
later cell would fail alike); 130 on Ctrl-C. The cells done stay in ``--out`` in every case.
"""

from __future__ import annotations

import argparse
import ctypes
import hashlib
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from scripts.bench_results import (  # noqa: E402
    BenchResults, Cell, ResultsFileError, attempt_seconds, cell_from_run, cell_key)

DEFAULT_PAIRS = ["Паспорт Фамилия", "Паспорт Код подразделения", "СНИЛС Номер СНИЛС", "Счёт Сумма",
                 "СТС Регистрационный знак", "Водительское удостоверение Категории"]

# contender name in the table -> CLI overrides
CRITIC = ["optimizer.rounds=3", "optimizer.patience=2"]
FEWSHOT = ["optimizer.random_sets=3", "optimizer.swap_candidates=1"]
OPTIMIZERS = {
    "baseline": ["optimizer=manual", "optimizer.candidates=[]"],
    "manual": ["optimizer=manual"],
    "fewshot": ["optimizer=fewshot", *FEWSHOT],
    "retrieval": ["optimizer=retrieval"],
    "quick": ["optimizer=quick"],
    "critic_quick": ["optimizer=critic_quick"],
    "advisor": ["optimizer=advisor"],
    "critic": ["optimizer=critic", *CRITIC],
    "critic_racing": ["optimizer=critic", *CRITIC, "optimizer.racing=true", "optimizer.minibatch=3"],
    "chain": ["optimizer=chain", *(o.replace("optimizer.", "optimizer.steps.s1_critic.") for o in CRITIC),
              *(o.replace("optimizer.", "optimizer.steps.s2_fewshot.") for o in FEWSHOT)],
    # the frameworks our users know, on the same engine, budget, split and advisor
    "textgrad": ["optimizer=textgrad", "optimizer.steps=3"],
    "dspy_mipro": ["optimizer=dspy", "optimizer.method=mipro", "optimizer.num_candidates=3", "optimizer.num_trials=4"],
    "dspy_gepa": ["optimizer=dspy", "optimizer.method=gepa", "optimizer.max_metric_calls=40"],
}
CONTENDERS = ["baseline", "manual", "fewshot", "retrieval", "quick", "critic_quick"]
LEASE_WAIT_S = 60  # seconds a cell waits for an earlier process still holding its run


@dataclass(frozen=True)
class Contender:
    """A contender as the table names it (``label``), its optimizer overrides and its budget a pair."""

    label: str
    overrides: tuple[str, ...]
    budget: int


def parse_contenders(specs: list[str], budget: int) -> list[Contender]:
    """``name`` or ``name:N`` (N evaluations a pair) for each spec.

    Raises:
        ValueError: an unknown name or a budget that is not a positive integer, naming the spec.
    """
    out = []
    for spec in specs:
        name, _, own = spec.partition(":")
        if name not in OPTIMIZERS:
            raise ValueError(f"--optimizers {spec!r}: unknown contender; known: {', '.join(OPTIMIZERS)}")
        if own and not (own.isdigit() and int(own) > 0):
            raise ValueError(f"--optimizers {spec!r}: the budget after ':' must be a positive integer")
        out.append(Contender(spec, tuple(OPTIMIZERS[name]), int(own) if own else budget))
    return out


def task_overrides(extra) -> list[str]:
    """The overrides of ``--extra`` that decide a cell's task, split, metric and models: all but the optimizer's
    and the run folder's."""
    return [o for o in extra if not o.startswith(("optimizer.", "optimizer=", "hydra.run", "hydra.sweep"))]


@dataclass(frozen=True)
class Bench:
    """What every cell shares."""

    task_csv: Path
    store: Path
    out: Path
    extra: tuple[str, ...]
    advisor_calls: int | None

    @property
    def settings(self) -> dict:
        """The settings that change a cell's results: a results file holds cells of one set of them."""
        return {"csv": str(self.task_csv), "extra": list(self.extra), "advisor_calls": self.advisor_calls}

    def base_overrides(self, seed: int) -> list[str]:
        """The overrides of every run of ``seed`` that decide its task, split and models (no optimizer)."""
        return ["task=csv", f"task.csv={self.task_csv}", f"split.seed={seed}", f"paths.store={self.store}",
                *task_overrides(self.extra)]

    def run_dir(self, contender: Contender, seed: int, pair: str) -> Path:
        slug = "".join(c if c.isascii() and c.isalnum() else "_" for c in pair)  # Hydra's override grammar
        slug = f"{slug}-{hashlib.sha256(pair.encode()).hexdigest()[:8]}"  # pairs that differ off ASCII stay apart
        return self.out.parent / "bench_runs" / self.out.stem / f"seed{seed}" / contender.label.replace(":", "_") / slug

    def command(self, contender: Contender, seed: int, pair: str) -> list[str]:
        run_dir = self.run_dir(contender, seed, pair)
        advisor = "null" if self.advisor_calls is None else self.advisor_calls
        return [sys.executable, "-m", "optimize", "task=csv", f"task.csv={self.task_csv}", f'pairs=["{pair}"]',
                f"split.seed={seed}", f"budget.evaluations_per_pair={contender.budget}",
                f"budget.advisor_calls={advisor}", f"paths.store={self.store}",
                f"paths.results_dir={run_dir / 'results'}", f"hydra.run.dir={run_dir}", "progress=false",
                # a killed benchmark's run dies with it, but its process may linger a moment unreaped
                f"lease_wait_s={LEASE_WAIT_S}", *contender.overrides, *self.extra]


@dataclass(frozen=True)
class SeedSplit:
    """One seed's split as the engine makes it: each pair's train answers, each test row's image."""

    train_answers: dict[str, list[str]]
    images: dict[str, str]


def seed_split(bench: Bench, seed: int, pairs: list[str]) -> SeedSplit:
    """The split of ``seed`` from the config the cells' runs compose (checks the CSV and pairs too)."""
    from scripts.ocr_ceiling import compose_config, split_of

    split = split_of(compose_config(bench.base_overrides(seed)), pairs)
    return SeedSplit({p.key: [e.answer for e in p.train] for p in split},
                     {e.source_row: e.image_sha256 for p in split for e in p.test})


def _die_with_parent() -> None:
    """In the child: SIGTERM when the benchmark dies, so a killed benchmark leaves no run behind."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def run_cell(bench: Bench, results: BenchResults, contender: Contender, seed: int, pair: str,
             split: SeedSplit) -> int:
    """Run one cell and record it (or its failure) in ``results``, saved at once; the run's exit code."""
    key = cell_key(contender.label, seed, pair)
    starts, now = results.started.setdefault(key, []), time.time()
    starts.append(now)
    results.attempt_starts.append(now)
    results.save(bench.out)
    run_dir = bench.run_dir(contender, seed, pair)
    began = time.monotonic()
    proc = subprocess.run(bench.command(contender, seed, pair), cwd=REPO, capture_output=True, text=True,
                          preexec_fn=_die_with_parent)
    wall = time.monotonic() - began
    try:
        if proc.returncode != 0:
            raise ValueError(f"exit {proc.returncode}")
        cell = cell_from_run(run_dir, contender.label, seed, pair, contender.budget, split.images,
                             split.train_answers.get(pair, []))
    except (OSError, ValueError, KeyError) as err:
        results.failures[key] = {"exit": proc.returncode, "error": str(err), "run_dir": str(run_dir),
                                 "stderr_tail": proc.stderr[-2000:]}
        results.save(bench.out)
        last = (proc.stderr.strip().splitlines() or [""])[-1]
        print(f"{key}: failed ({err}) {last}", file=sys.stderr, flush=True)
        return proc.returncode or 1
    others = [t for times in results.started.values() for t in times]  # a file written before attempt_starts
    seconds = attempt_seconds(bench.store, starts, results.attempt_starts + others, time.time())
    cell.answer_model_s, cell.advisor_s = seconds.get("answer"), seconds.get("advisor")
    cell.wall_s, cell.attempts = round(wall, 1), len(starts)
    results.cells[key] = cell
    results.failures.pop(key, None)
    results.started.pop(key, None)
    results.save(bench.out)
    print(f"done {key}: test CER {sum(cell.test_cers) / len(cell.test_cers):.3f} in {wall:.0f} s", flush=True)
    return 0


def ensure_ceiling(bench: Bench, results: BenchResults, seed: int, pairs: list[str]) -> None:
    """Measure the ceiling of ``seed`` once and keep it in the results file."""
    from scripts.ocr_ceiling import compose_config, measure_ceiling

    if str(seed) in results.ceilings:
        return
    started = time.monotonic()
    ceiling = measure_ceiling(compose_config(bench.base_overrides(seed)), pairs)
    results.ceilings[str(seed)] = ceiling.to_json()
    results.save(bench.out)
    print(f"ceiling of seed {seed} in {time.monotonic() - started:.0f} s"
          + ("" if ceiling.applies else f": {ceiling.reason}"), flush=True)


def run_all(args: argparse.Namespace, task_csv: Path) -> int:
    """Every cell not yet in ``--out``, seed by seed; the exit code (2: bad input, before or during)."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from prompt_opt_api import TaskError

    bench = Bench(task_csv, args.store.resolve(), args.out.resolve(), tuple(args.extra), args.advisor_calls)
    try:
        contenders = parse_contenders(args.optimizers, args.budget)
        results = BenchResults.load(bench.out)
        results.check_settings(bench.settings, bench.out)
        splits = {seed: seed_split(bench, seed, args.pairs) for seed in args.seeds}
    except (ValueError, TaskError, HydraException, OmegaConfBaseException) as err:  # ResultsFileError: a ValueError
        print(f"bench_optimizers: {str(err).splitlines()[0]}", file=sys.stderr)
        return 2
    failed = 0
    for seed in args.seeds:
        if args.ceiling:
            ensure_ceiling(bench, results, seed, args.pairs)
        for contender in contenders:
            for pair in args.pairs:
                if cell_key(contender.label, seed, pair) in results.cells:
                    print(f"skip {cell_key(contender.label, seed, pair)}: in {bench.out}", flush=True)
                    continue
                code = run_cell(bench, results, contender, seed, pair, splits[seed])
                if code in (2, 3):
                    print(f"bench_optimizers: stopped: a run exited {code} (see the line above); "
                          f"{len(results.cells)} cells kept in {bench.out}", file=sys.stderr)
                    return 2
                failed += code != 0
    if failed:
        print(f"bench_optimizers: {failed} cells failed (in {bench.out} under failures); the next start runs them "
              "again", file=sys.stderr)
    return 1 if failed else 0


def print_tables(files: list[Path], args: argparse.Namespace) -> int:
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from scripts.bench_table import Merged, render

    missing = [str(p) for p in files if not p.is_file()]
    if missing:
        print(f"bench_optimizers: --table {missing[0]}: no such file", file=sys.stderr)
        return 2
    if len(args.suffixes) > len(files):
        print(f"bench_optimizers: --suffixes names {len(args.suffixes)} suffixes for {len(files)} files", file=sys.stderr)
        return 2
    suffixes = list(args.suffixes) + [""] * (len(files) - len(args.suffixes))
    try:
        loaded = [(str(p), BenchResults.load(p).relabelled(suffix)) for p, suffix in zip(files, suffixes)]
        if args.constant:
            loaded.insert(0, ("constant", constant_results(loaded)))
        merged = Merged.of(loaded)
    except (ValueError, HydraException, OmegaConfBaseException) as err:  # ResultsFileError; --constant: no task
        # CSV, a field it lacks (TaskError), an override that no longer composes
        print(f"bench_optimizers: {str(err).splitlines()[0]}", file=sys.stderr)
        return 2
    print(render(merged, reference=args.reference, markdown=args.markdown, ceiling=args.ceiling,
                 compare=[tuple(c) for c in args.compare or []], curves=args.curves or [], expected=args.expect or []))
    return 0


def constant_results(files: list[tuple[str, BenchResults]]) -> BenchResults:
    """The constant-answer cells (``scripts/bench_constant.py``) of the seeds and fields each file has, each on
    its own file's split and metric.

    Raises:
        ValueError: two files whose cells of one seed and field were run on other test rows or metrics.
    """
    from scripts.bench_constant import constant_cells

    out: dict[str, tuple[str, Cell]] = {}
    for name, results in files:
        cells = results.cells.values()
        for key, cell in constant_cells(results, {c.seed for c in cells}, {c.pair for c in cells},
                                        task_overrides(results.settings.get("extra") or [])).items():
            first, kept = out.setdefault(key, (name, cell))
            if kept.test != cell.test:
                raise ValueError(f"--constant: {first} and {name} split or score {cell.pair!r} of seed {cell.seed} "
                                 "differently (their task CSV or overrides): no one constant answer fits both")
    return BenchResults(cells={key: cell for key, (_, cell) in out.items()})


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPO / "outputs/bench_data")
    parser.add_argument("--per-class", type=int, default=20, help="documents per class to generate")
    parser.add_argument("--csv", type=Path, default=None,
                        help="a task CSV to use instead of generated data (e.g. ../shared/data/sroie_dev/annotation.csv)")
    parser.add_argument("--pairs", nargs="+", default=DEFAULT_PAIRS)
    parser.add_argument("--budget", type=int, default=60, help="answer-model evaluations per pair")
    parser.add_argument("--advisor-calls", type=int, default=None, help="advisor calls per cell's run (null: none)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--optimizers", nargs="+", default=CONTENDERS, metavar="NAME[:BUDGET]")
    parser.add_argument("--out", type=Path, default=REPO / "outputs/bench_optimizers.json")
    parser.add_argument("--store", type=Path, default=REPO / "outputs/bench_store.sqlite")
    parser.add_argument("--extra", nargs="*", default=[], help="more CLI overrides for every run")
    parser.add_argument("--ceiling", action="store_true",
                        help="measure (once per seed) and show the OCR ceiling beside the contenders")
    parser.add_argument("--table", nargs="+", type=Path, metavar="JSON", help="only print the tables of results files")
    parser.add_argument("--constant", action="store_true",
                        help="show the constant answer (the train answer best on val, given to every page) as a "
                             "contender, computed from each file's task CSV, split and metric (no model)")
    parser.add_argument("--suffixes", nargs="+", default=[], metavar="SUFFIX",
                        help="--table: appended to the contenders of each file in order (e.g. '' +fit: the second "
                             "file's quick is quick+fit), so runs of one optimizer at two settings sit side by side")
    parser.add_argument("--markdown", action="store_true", help="tables as markdown (for docs/benchmarks.md)")
    parser.add_argument("--reference", default="manual", help="the contender paired differences are taken against")
    parser.add_argument("--compare", nargs=2, action="append", metavar=("A", "B"), help="also print A minus B, paired")
    parser.add_argument("--curves", nargs="+", metavar="NAME", help="also print these contenders' val curves")
    parser.add_argument("--expect", nargs="+", metavar="NAME[:BUDGET]",
                        help="--table: contenders the benchmark will run; one with no cell on a seed yet is listed as missing")
    parser.add_argument("--demo-cost", metavar="PAIR", help="only measure s/query and CER with k retrieved demos on PAIR")
    parser.add_argument("--ks", nargs="+", type=int, default=[0, 1, 2, 3, 4], help="--demo-cost: demo counts")
    parser.add_argument("--demo-chars", nargs="+", type=int, default=[0, 300],
                        help="--demo-cost: demo page text around the answer, in characters (0: whole page)")
    parser.add_argument("--examples", type=int, default=8, help="--demo-cost: val examples asked about")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.table:
        return print_tables(args.table, args)
    if args.csv is not None and not args.csv.is_file():
        print(f"bench_optimizers: --csv {args.csv}: no such file", file=sys.stderr)
        return 2
    task_csv = args.csv.resolve() if args.csv else args.data.resolve() / "task.csv"
    if not task_csv.is_file():
        subprocess.run([sys.executable, "scripts/make_demo_data.py", "--out", str(args.data),
                        "--per-class", str(args.per_class)], cwd=REPO, check=True)
    if args.demo_cost:
        from scripts.bench_demo_cost import demo_cost

        demo_cost(task_csv, args.demo_cost, args.ks, args.demo_chars, args.examples, tuple(args.extra))
        return 0
    try:
        code = run_all(args, task_csv)
    except KeyboardInterrupt:  # the cell's run is stopped with it; the cells done are in --out
        print(f"bench_optimizers: interrupted; the cells done are in {args.out}, the same command resumes",
              file=sys.stderr)
        return 130
    if code in (0, 1):
        print_tables([args.out], args)
    return code


if __name__ == "__main__":
    sys.exit(main())
