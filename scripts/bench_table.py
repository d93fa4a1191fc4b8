"""The tables of ``scripts/bench_optimizers.py``, from one or more of its results files.

Per contender and split seed, over the pairs (fields) it has cells for:

- **held-out CER**: the mean over every test example of every field pooled, with a seeded
  percentile bootstrap 95 % interval over those examples, the median and the mean with each
  example's CER clipped at 1 (``optimize/stats.py``); the mean per field; evaluations,
  answer-model seconds, advisor calls and wall time summed over its cells.
- **paired difference against a reference** (``manual`` unless ``--reference`` says otherwise)
  and against the OCR ceiling: the contender's CER minus the reference's on the same test
  examples (matched by CSV row), pooled over the fields both have, with a paired bootstrap
  95 % interval; the fields either one lacks are named, not guessed.
- **val-test gap** per field: the winner's test CER minus its val CER (positive: the
  selection on val was optimistic).
- **repeated train answer share** per field: for the most frequent train answer ``a`` of the
  field, the share of test pages whose prediction is ``a`` although ``a`` is not that page's
  own answer (both normalized as the metric does), counted only when it happens on at least
  2 pages (else 0). A winner that copies a demo's answer onto other pages shows here; any
  demo, fixed or retrieved, is a train example, so its answer is a train answer.
- **OCR ceiling** (``scripts/ocr_ceiling.py``): the best-span CER of the same test pages,
  per field, when the results file holds it; the **gap to ceiling**: the winner's test CER minus
  the ceiling, over the test examples both have (matched by CSV row).
- **test errors by class** per field: the winner's wrong test answers counted by error class
  (``prompt_opt_api.error_classes``), the nonzero classes largest first, then how many of the
  test answers were wrong; the cell's own counts, else its run folder's ``run.json`` (read only
  then); empty when neither has them (an old run, a run folder gone).
"""

from __future__ import annotations

import json
import math
import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from optimize.error_classes import SplitErrors
from optimize.stats import bootstrap_interval, clipped_mean, median, paired_bootstrap_interval
from scripts.bench_results import BenchResults, Cell, split_errors_of
from scripts.ocr_ceiling import Ceiling

CEILING = "OCR ceiling (best span)"


@dataclass
class Merged:
    """Cells and ceilings of one or more results files (a later file's cell replaces an earlier one's)."""

    cells: dict[str, Cell] = field(default_factory=dict)
    ceilings: dict[int, Ceiling] = field(default_factory=dict)
    failures: dict[str, dict] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, results: Iterable[tuple[str, BenchResults]]) -> Merged:
        merged = cls()
        for name, res in results:
            for key, cell in res.cells.items():
                if key in merged.cells:
                    merged.notes.append(f"{key}: the cell in {name} replaces an earlier file's")
                merged.cells[key] = cell
                merged.failures.pop(key, None)
            for key, failure in res.failures.items():
                if key not in merged.cells:
                    merged.failures[key] = failure
            for seed, data in res.ceilings.items():
                merged.ceilings[int(seed)] = Ceiling.from_json(data)
        return merged

    def has_ceiling(self) -> bool:
        return any(c.applies for c in self.ceilings.values())

    def contenders(self) -> list[str]:
        return list(dict.fromkeys(c.optimizer for c in self.cells.values()))

    def seeds(self) -> list[int]:
        return sorted({c.seed for c in self.cells.values()} | set(self.ceilings))

    def pairs(self, seed: int) -> list[str]:
        return sorted({c.pair for c in self.cells.values() if c.seed == seed})

    def of_contender(self, optimizer: str, seed: int) -> dict[str, Cell]:
        return {c.pair: c for c in self.cells.values() if c.optimizer == optimizer and c.seed == seed}


@dataclass(frozen=True)
class Pooled:
    """Mean [interval], median and clipped mean of per-example CERs."""

    mean: float
    low: float
    high: float
    median: float
    clipped: float
    n: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Pooled:
        lo, hi = bootstrap_interval(values)
        mean = statistics.mean(values) if values else math.nan
        return cls(mean, lo, hi, median(values), clipped_mean(values), len(values))


@dataclass(frozen=True)
class Paired:
    """Mean of (contender − reference) over the same test examples, its paired interval, what is missing."""

    mean: float
    low: float
    high: float
    n: int
    missing: tuple[str, ...]  # fields (pairs) where the contender or the reference has no cell


def paired(mine: dict[str, list[tuple[str, float]]], reference: dict[str, list[tuple[str, float]]],
           pairs: Sequence[str]) -> Paired:
    """Pair the two by CSV row within each field of ``pairs``; fields either lacks are listed."""
    values, baseline, missing = [], [], []
    for pair in pairs:
        if pair not in mine or pair not in reference:
            missing.append(pair)
            continue
        theirs = dict(reference[pair])
        for row, cer in mine[pair]:
            if row in theirs:
                values.append(cer)
                baseline.append(theirs[row])
    lo, hi = paired_bootstrap_interval(values, baseline)
    mean = statistics.mean(v - b for v, b in zip(values, baseline)) if values else math.nan
    return Paired(mean, lo, hi, len(values), tuple(missing))


def by_row(cells: dict[str, Cell]) -> dict[str, list[tuple[str, float]]]:
    return {pair: [(p.row, p.cer) for p in cell.test] for pair, cell in cells.items()}


def ceiling_by_row(ceiling: Ceiling | None) -> dict[str, list[tuple[str, float]]]:
    if ceiling is None or not ceiling.applies:
        return {}
    return {pair: [(p.row, p.cer) for p in points] for pair, points in ceiling.pairs.items()}


def repeated_answer_share(cell: Cell, metric=None) -> float:
    """The share of the cell's test pages answered with one train answer not their own (module docstring)."""
    from tasks.cer_metric import CerMetric

    if not cell.test:
        return math.nan
    metric = metric or CerMetric()
    train = {metric.normalize(a) for a in (cell.train_answers or cell.demo_answers)} - {""}
    copied = Counter(pred for pred, own in ((metric.normalize(p.prediction), metric.normalize(p.answer))
                                            for p in cell.test) if pred in train and pred != own)
    top = max(copied.values(), default=0)
    return top / len(cell.test) if top >= 2 else 0.0


def _sum(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) if present else None


@dataclass
class Table:
    """A titled table, printed as aligned text or as markdown."""

    title: str
    header: list[str]
    rows: list[list[str]] = field(default_factory=list)

    def render(self, markdown: bool) -> str:
        if markdown:
            lines = [f"**{self.title}**", "", "| " + " | ".join(self.header) + " |",
                     "|" + "---|" * len(self.header)]
            return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in self.rows])
        widths = [max(len(x) for x in col) for col in zip(self.header, *self.rows)]
        fmt = " | ".join(f"{{:{w}s}}" for w in widths)
        return "\n".join([self.title, fmt.format(*self.header), *(fmt.format(*r) for r in self.rows)])


def _f(value: float | None, digits: int = 3) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _interval(mean: float, low: float, high: float, n: int, signed: bool = False) -> str:
    if n == 0:
        return ""
    sign = "+" if signed else ""
    return f"{mean:{sign}.3f} [{low:{sign}.3f}, {high:{sign}.3f}] (n={n})"


def main_table(merged: Merged) -> Table:
    """Held-out CER pooled over fields, per field, and the costs, per contender and seed (and the ceiling)."""
    fields_ = sorted({c.pair for c in merged.cells.values()})
    table = Table("held-out test CER per contender and split seed (pooled over the test examples of its fields)",
                  ["optimizer", "seed", "mean [95 % CI]", "median", "clipped at 1", *fields_,
                   "evaluations", "answer-model s", "advisor calls", "wall s", "last cell finished"])
    for seed in merged.seeds():
        for name in merged.contenders():
            cells = merged.of_contender(name, seed)
            if not cells:
                continue
            p = Pooled.of([v for c in cells.values() for v in c.test_cers])
            table.rows.append([name, str(seed), _interval(p.mean, p.low, p.high, p.n), _f(p.median), _f(p.clipped),
                               *(_f(statistics.mean(cells[f].test_cers)) if f in cells and cells[f].test else ""
                                 for f in fields_),
                               str(_sum(c.evaluations for c in cells.values()) or ""),
                               _f(_sum(c.answer_model_s for c in cells.values()), 0),
                               str(_sum(c.advisor_calls for c in cells.values()) or 0),
                               _f(_sum(c.wall_s for c in cells.values()), 0),
                               max(c.finished_at for c in cells.values())[:10]])
        ceiling = merged.ceilings.get(seed)
        if ceiling is not None and ceiling.applies:
            points = {k: [p.cer for p in v] for k, v in ceiling.pairs.items()}
            p = Pooled.of([v for k in points if k in fields_ for v in points[k]])
            table.rows.append([CEILING, str(seed), _interval(p.mean, p.low, p.high, p.n), _f(p.median),
                               _f(p.clipped), *(_f(statistics.mean(points[f])) if points.get(f) else "" for f in fields_),
                               "", "", "", "", ""])
    return table


def paired_table(merged: Merged, reference: str) -> Table:
    """Each contender minus the reference, and minus the ceiling (when measured), paired over the same test examples."""
    with_ceiling = merged.has_ceiling()
    table = Table(f"paired differences over the same test examples (negative: fewer errors than {reference}"
                  + (" or than the ceiling's perfect reader)" if with_ceiling else ")"),
                  ["optimizer", "seed", f"minus {reference} [95 % CI]",
                   *(["minus OCR ceiling [95 % CI]"] if with_ceiling else []),
                   f"fields missing for the difference with {reference}"])
    for seed in merged.seeds():
        pairs = merged.pairs(seed)
        ref = by_row(merged.of_contender(reference, seed))
        ceiling = ceiling_by_row(merged.ceilings.get(seed))
        for name in merged.contenders():
            cells = merged.of_contender(name, seed)
            if not cells:
                continue
            mine = by_row(cells)
            vs_ref = paired(mine, ref, pairs) if name != reference else None
            vs_ceiling = paired(mine, ceiling, sorted(mine)) if ceiling else None
            table.rows.append([
                name, str(seed),
                _interval(vs_ref.mean, vs_ref.low, vs_ref.high, vs_ref.n, signed=True) if vs_ref else "",
                *([_interval(vs_ceiling.mean, vs_ceiling.low, vs_ceiling.high, vs_ceiling.n, signed=True)
                   if vs_ceiling else ""] if with_ceiling else []),
                ", ".join(vs_ref.missing) if vs_ref else ""])
    return table


def winner_errors(cell: Cell) -> SplitErrors | None:
    """The winner's wrong test answers by class: the cell's own, else its run folder's ``run.json``
    (read only then); None when neither has them or the run folder cannot be read."""
    if cell.test_errors is not None:
        return cell.test_errors
    if not cell.run_dir:
        return None
    try:
        summary = json.loads((Path(cell.run_dir) / "run.json").read_text(encoding="utf-8"))
        return split_errors_of(summary["pairs"][cell.pair]["error_classes"]["test"])
    except (OSError, ValueError, LookupError, TypeError):
        return None


def errors_by_class(errors: SplitErrors | None) -> str:
    """``elsewhere_on_page 23, copied_demo 6 (29 of 50 wrong)``: nonzero classes, largest first."""
    if errors is None:
        return ""
    classes = sorted(((name, k) for name, k in errors.counts.items() if k), key=lambda c: (-c[1], c[0]))
    listed = ", ".join(f"{name} {k}" for name, k in classes)
    return f"{listed} ({errors.wrong} of {errors.n} wrong)".lstrip()


def ceiling_gap(cell: Cell, ceiling: list[tuple[str, float]]) -> float | None:
    """The cell's test CER minus the ceiling's over the test examples both have (by CSV row)."""
    theirs = dict(ceiling)
    diffs = [p.cer - theirs[p.row] for p in cell.test if p.row in theirs]
    return statistics.mean(diffs) if diffs else None


def field_table(merged: Merged) -> Table:
    """Per field: test and val CER of each winner, the gap, repeated train answers, the ceiling and
    the gap to it, the winner's test errors by class, the winner's kind."""
    with_ceiling = merged.has_ceiling()
    table = Table("per field: the winner's test and val CER, the val-test gap (test minus val), the share of "
                  "test pages answered with one train answer not their own",
                  ["field", "optimizer", "seed", "test CER", "val CER", "val-test gap", "repeated train answer",
                   *(["OCR ceiling", "gap to ceiling"] if with_ceiling else []), "test errors by class",
                   "author", "demos", "evaluations"])
    for pair in sorted({c.pair for c in merged.cells.values()}):
        for seed in merged.seeds():
            ceiling = ceiling_by_row(merged.ceilings.get(seed)).get(pair)
            for name in merged.contenders():
                cell = merged.of_contender(name, seed).get(pair)
                if cell is not None and cell.test:
                    table.rows.append(_field_row(cell, ceiling, with_ceiling))
    return table


def _field_row(cell: Cell, ceiling: list[tuple[str, float]] | None, with_ceiling: bool) -> list[str]:
    test = statistics.mean(cell.test_cers)
    gap = ceiling_gap(cell, ceiling) if ceiling else None
    return [cell.pair, cell.optimizer, str(cell.seed), _f(test), _f(cell.val_cer),
            _f(test - cell.val_cer, 3) if cell.val_cer is not None else "",
            _f(repeated_answer_share(cell), 2),
            *([_f(statistics.mean(c for _, c in ceiling)) if ceiling else "",
               "" if gap is None else f"{gap:+.3f}"] if with_ceiling else []),
            errors_by_class(winner_errors(cell)),
            cell.author, "" if cell.n_demos is None else str(cell.n_demos), str(cell.evaluations or "")]


def missing_cells(merged: Merged, expected: Sequence[str] = ()) -> list[str]:
    """Cells a seed's contenders lack (fields that other contenders of that seed have), with the
    answer-model hours they would take at that contender's mean per cell so far; the ``expected``
    contenders with no cell on a seed yet; and failures."""
    lines = []
    with_cells = merged.contenders()
    for seed in merged.seeds():
        pairs = merged.pairs(seed)
        for name in dict.fromkeys([*with_cells, *expected]):
            have = merged.of_contender(name, seed)
            lacking = [p for p in pairs if p not in have]
            if not lacking:
                continue
            if name not in with_cells:
                lines.append(f"missing: {name} seed {seed}: all {len(pairs)} fields (no cell done yet)")
            else:
                lines.append(f"missing: {name} seed {seed}: {', '.join(lacking)}{_hours_left(merged, name, len(lacking))}")
    for key, failure in sorted(merged.failures.items()):
        lines.append(f"failed (re-run on the next start): {key}: exit {failure.get('exit')}")
    return lines


def _hours_left(merged: Merged, name: str, cells: int) -> str:
    spent = [c.answer_model_s for c in merged.cells.values() if c.optimizer == name and c.answer_model_s is not None]
    if not spent:
        return ""
    return (f" (about {cells * statistics.mean(spent) / 3600:.1f} h of answer model, at the mean of its "
            f"{len(spent)} cells done)")


def compare_lines(merged: Merged, a: str, b: str) -> list[str]:
    """``a`` minus ``b`` paired over the same test examples, per seed."""
    lines = []
    for seed in merged.seeds():
        d = paired(by_row(merged.of_contender(a, seed)), by_row(merged.of_contender(b, seed)), merged.pairs(seed))
        missing = f"; fields missing: {', '.join(d.missing)}" if d.missing else ""
        lines.append(f"{a} minus {b}, seed {seed}: {_interval(d.mean, d.low, d.high, d.n, signed=True) or 'no pairs'}"
                     f"{missing}")
    return lines


def curve_lines(merged: Merged, names: Sequence[str]) -> list[str]:
    """Each cell's val curve, (evaluations spent):(best full-val CER so far), for the contenders
    named (``fewshot`` also names ``fewshot:150``)."""
    return [f"val curve {c.optimizer} seed {c.seed} {c.pair}: "
            + " ".join(f"{int(spent)}:{best:.3f}" for spent, best in c.curve)
            for c in merged.cells.values() if c.curve and (c.optimizer.partition(":")[0] in names or c.optimizer in names)]


def render(merged: Merged, reference: str = "manual", markdown: bool = False, ceiling: bool = True,
           compare: Sequence[tuple[str, str]] = (), curves: Sequence[str] = (), expected: Sequence[str] = ()) -> str:
    """Every table and note, as text or markdown; ``expected``: contenders whose cells the benchmark
    will run (listed as missing on a seed where none is done yet)."""
    if not ceiling:
        merged = Merged(merged.cells, {}, merged.failures, merged.notes)
    parts = [main_table(merged), paired_table(merged, reference), field_table(merged)]
    out = [t.render(markdown) for t in parts]
    notes = [*missing_cells(merged, expected), *(line for a, b in compare for line in compare_lines(merged, a, b)),
             *curve_lines(merged, curves), *merged.notes,
             *(f"seed {c.seed}: {c.reason}" for c in merged.ceilings.values() if not c.applies)]
    if notes:
        out.append("\n".join(f"- {n}" if markdown else n for n in notes))
    return "\n\n".join(out)
