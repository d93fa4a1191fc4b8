"""scripts/bench_optimizers.py: cells resume, the tables' maths, and the OCR ceiling (scripts/ocr_ceiling.py)."""

from __future__ import annotations

import csv
import json
import os
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

from optimize.error_classes import SplitErrors
from optimize.stats import bootstrap_interval
from scripts.bench_results import BenchResults, Cell, Prediction, cell_from_run, cell_key, split_errors_of
from scripts.bench_table import Merged, field_table, main_table, missing_cells, paired_table, repeated_answer_share
from scripts.ocr_ceiling import best_span
from tasks.cer_metric import CerMetric
from tasks.docqa_csv import load_task
from tasks.pair_splits import PairSplitter
from tests.cli_helpers import REPO, TEST_CONF, cli_env
from tests.task_factory import make_task, write_csv

SCRIPTED = [f"hydra.searchpath=[file://{TEST_CONF}]", "model=scripted", "advisor=none", "split.val=0.2"]
READER = [*SCRIPTED, "model._target_=tests.scripted_answer_model.ScriptedReader"]


# -- the best span: pure strings --------------------------------------------------------


def test_best_span_finds_the_answer_inside_a_word_and_across_lines():
    assert best_span("25/12/2018", "Date:25/12/2018 Time 10:00") == best_span("25/12/2018", "x25/12/2018.")
    assert best_span("25/12/2018", "Date:25/12/2018 Time 10:00").span == "25/12/2018"
    match = best_span("Tan Woon  Yann", "BOOK TA .K\nTAN WOON\nYANN\nNO 12")
    assert (match.cer, match.span) == (0.0, "tan woon yann")


def test_best_span_is_the_closest_misreading_and_one_for_no_text():
    match = best_span("RM45.60", "T0TAL RM45.6O CASH 50.00")
    assert match.cer == pytest.approx(1 / 7) and match.span in ("rm45.6", "rm45.6o")  # one edit either way
    assert best_span("RM45.60", "") == best_span("RM45.60", "...  ") == best_span("RM45.60", "zzz").__class__(1.0, "")


def test_best_span_equals_the_metrics_minimum_over_every_substring():
    """Exact, not sampled: on random pages with spaces, punctuation and case, the best span's CER is
    the brute-force minimum of CerMetric.cer over all substrings of the raw page (and over none: 1.0)."""
    metric, rng = CerMetric(), random.Random(7)
    alphabet = "abAB1 .:-\n«"
    checked = 0
    for _ in range(300):
        page = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 16)))
        answer = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 6)))
        if not metric.normalize(answer):
            continue
        brute = min([1.0] + [metric.cer(answer, page[i:j]) for i in range(len(page))
                             for j in range(i + 1, len(page) + 1)])
        match = best_span(answer, page, metric)
        assert match.cer == pytest.approx(brute), (answer, page, match)
        assert match.cer == pytest.approx(metric.cer(answer, match.span)), (answer, page, match)
        checked += 1
    assert checked > 200


def test_best_span_of_a_long_page_takes_well_under_a_second():
    rng = random.Random(0)
    page = "".join(rng.choice("abcdefghij klmnop 0123456789.,\n") for _ in range(6000))
    answer = "NO 12, JALAN PERMAS 10/8, BANDAR BARU PERMAS JAYA, 81750 JOHOR BAHRU"
    started = time.monotonic()
    best_span(answer, page)
    assert time.monotonic() - started < 1.0


# -- the tables: a hand-made results file -----------------------------------------------


def _cell(optimizer, pair, cers, rows=None, seed=0, val=None, predictions=None, answers=None, train=()):
    rows = rows or [f"r{i}" for i in range(len(cers))]
    predictions = predictions or ["p"] * len(cers)
    answers = answers or ["a"] * len(cers)
    test = [Prediction(r, a, p, c) for r, a, p, c in zip(rows, answers, predictions, cers)]
    return Cell(optimizer, seed, pair, 100, test, val_cer=val, evaluations=10, advisor_calls=1, wall_s=5.0,
                answer_model_s=4.0, train_answers=list(train))


def _merged(*cells):
    return Merged.of([("hand-made", BenchResults(cells={c.key: c for c in cells}))])


def test_paired_difference_matches_test_examples_by_row_not_by_position():
    """quick is manual minus 0.1 on every test row, listed in another order: paired by row the
    difference is -0.1 with a zero-width interval; paired by position it would spread."""
    manual = _cell("manual", "A", [0.5, 0.2, 0.9, 1.0], rows=["r1", "r2", "r3", "r4"])
    quick = _cell("quick", "A", [0.8, 0.4, 0.1, 0.9, 0.0], rows=["r3", "r1", "r2", "r4", "r5"])  # r5: manual lacks it
    row = {r[0]: r for r in paired_table(_merged(manual, quick), "manual").rows}["quick"]
    assert row[2] == "-0.100 [-0.100, -0.100] (n=4)"


def test_paired_difference_names_the_fields_either_side_lacks():
    cells = [_cell("manual", "A", [0.5, 0.5]), _cell("manual", "B", [0.3, 0.3]), _cell("quick", "A", [0.1, 0.3])]
    cells[2].answer_model_s = 5400.0
    merged = _merged(*cells)
    row = {r[0]: r for r in paired_table(merged, "manual").rows}["quick"]
    lo, hi = bootstrap_interval([-0.4, -0.2])
    assert row[2] == f"-0.300 [{lo:+.3f}, {hi:+.3f}] (n=2)" and row[3] == "B"
    assert missing_cells(merged) == ["missing: quick seed 0: B (about 1.5 h of answer model, at the mean of its 1 cells done)"]
    assert missing_cells(merged, ["quick", "fewshot:150"]) == [
        "missing: quick seed 0: B (about 1.5 h of answer model, at the mean of its 1 cells done)",
        "missing: fewshot:150 seed 0: all 2 fields (no cell done yet)"]  # expected, none done: listed too


def test_pooled_mean_interval_median_clipped_and_costs_per_contender():
    cells = [_cell("manual", "A", [0.5, 0.2, 0.0, 1.0]), _cell("manual", "B", [0.3, 2.0])]
    cells[0].finished_at, cells[1].finished_at = "2026-12-04T23:10:00+0000", "2026-12-03T10:00:00+0000"
    table = main_table(_merged(*cells))
    values = [0.5, 0.2, 0.0, 1.0, 0.3, 2.0]
    lo, hi = bootstrap_interval(values)
    assert table.header[5:7] == ["A", "B"]
    assert table.rows == [["manual", "0", f"{statistics.mean(values):.3f} [{lo:.3f}, {hi:.3f}] (n=6)", "0.400",
                           f"{(0.5 + 0.2 + 1.0 + 0.3 + 1.0) / 6:.3f}", "0.425", "1.150", "20", "8", "2", "10", "2026-12-04"]]


def test_val_test_gap_and_repeated_train_answer_share_per_field():
    """Three pages answered with one train answer that is not theirs (case aside): 3 of 6; a page
    whose own answer it is does not count; an answer seen on one page only is no repetition."""
    cell = _cell("fewshot", "A", [0.4, 0.4, 0.4, 0.0, 0.6, 0.2], val=0.1, train=["ИВАНОВ", "Петров"],
                 predictions=["Иванов", "иванов", "ИВАНОВ.", "Иванов", "Петров", "Сидоров"],
                 answers=["Кузнецов", "Попов", "Смирнов", "Иванов", "Волков", "Сидоров"])
    assert repeated_answer_share(cell) == 0.5
    once = _cell("fewshot", "A", [0.4, 0.0], train=["Петров"], predictions=["Петров", "Иванов"],
                 answers=["Попов", "Иванов"])
    assert repeated_answer_share(once) == 0.0
    (row,) = field_table(_merged(cell)).rows
    assert row[:7] == ["A", "fewshot", "0", "0.333", "0.100", "0.233", "0.50"]


def test_the_markdown_table_and_the_ceiling_rows(tmp_path, capsys):
    from scripts.bench_optimizers import main
    from scripts.ocr_ceiling import Ceiling, CeilingPoint

    res = BenchResults(cells={c.key: c for c in [_cell("manual", "A", [0.5, 0.2])]},
                       ceilings={"0": Ceiling(0, "reader", True, pairs={"A": [CeilingPoint("r0", 0.1, "x"),
                                                                                CeilingPoint("r1", 0.0, "y")]}).to_json()})
    res.save(tmp_path / "cells.json")
    assert main(["--table", str(tmp_path / "cells.json"), "--markdown", "--ceiling"]) == 0
    out = capsys.readouterr().out
    lo, hi = bootstrap_interval([0.1, 0.0])
    assert f"| OCR ceiling (best span) | 0 | 0.050 [{lo:.3f}, {hi:.3f}] (n=2) | 0.050 | 0.050 | 0.050 |" in out
    lo, hi = bootstrap_interval([0.4, 0.2])
    assert f"| manual | 0 |  | +0.300 [{lo:+.3f}, {hi:+.3f}] (n=2) |  |" in out  # minus the ceiling, paired
    assert main(["--table", str(tmp_path / "cells.json")]) == 0
    assert "OCR ceiling" not in capsys.readouterr().out  # shown only with --ceiling


def test_two_files_of_one_optimizer_sit_side_by_side_with_suffixes_and_compare_paired(tmp_path, capsys):
    from scripts.bench_optimizers import main

    for name, cers in (("old", [0.5, 0.4]), ("new", [0.1, 0.4])):
        BenchResults(cells={c.key: c for c in [_cell("quick", "A", cers)]}).save(tmp_path / f"{name}.json")
    files = [str(tmp_path / "old.json"), str(tmp_path / "new.json")]
    assert main(["--table", *files, "--suffixes", "", "+fit", "--compare", "quick+fit", "quick"]) == 0
    out = capsys.readouterr().out
    lo, hi = bootstrap_interval([-0.4, 0.0])
    assert f"quick+fit minus quick, seed 0: -0.200 [{lo:+.3f}, {hi:+.3f}] (n=2)" in out.splitlines()
    assert main(["--table", *files]) == 0
    assert "quick+fit" not in capsys.readouterr().out  # without suffixes the later file replaces the cell
    assert main(["--table", *files, "--suffixes", "a", "b", "c"]) == 2


def test_curves_and_comparisons_name_contenders_with_their_own_budget(capsys):
    from scripts.bench_table import render

    few = _cell("fewshot:150", "A", [0.2, 0.4])
    few.curve = [[10, 0.5], [40, 0.25]]
    out = render(_merged(few, _cell("retrieval", "A", [0.1, 0.1])), compare=[("retrieval", "fewshot:150")],
                 curves=["fewshot"])
    lo, hi = bootstrap_interval([-0.1, -0.3])
    assert "val curve fewshot:150 seed 0 A: 10:0.500 40:0.250" in out.splitlines()
    assert f"retrieval minus fewshot:150, seed 0: -0.200 [{lo:+.3f}, {hi:+.3f}] (n=2)" in out.splitlines()


def _error_classes(wrong, n, **counts):
    every = dict.fromkeys(["chatty", "copied_demo", "elsewhere_on_page", "empty", "format", "not_on_page", "other",
                           "other_script"], 0)
    return {"n": n, "wrong": wrong, "counts": {**every, **counts}, "most_copied": 0, "copied_of": 0}


def _run_dir(root, pair, test, val=None):
    """A finished run folder as far as the tables read it: run.json's per-pair error classes."""
    root.mkdir(parents=True)
    digest = {"error_classes": {"test": test, "val": val}} if test is not None else {"curve": []}
    (root / "run.json").write_text(json.dumps({"pairs": {pair: digest}}), encoding="utf-8")
    return str(root)


def test_the_field_table_lists_the_winners_test_errors_by_class_largest_first(tmp_path):
    """The classes come from the cell's run.json (test, not val), only the nonzero ones, largest
    first (ties by name), with how many of the test answers were wrong; a cell's own classes win."""
    old = _cell("quick", "A", [0.4, 0.0])
    old.run_dir = _run_dir(tmp_path / "run", "A", _error_classes(32, 50, format=3, elsewhere_on_page=23,
                                                                  copied_demo=6),
                           val=_error_classes(5, 20, not_on_page=5))
    (row,) = field_table(_merged(old)).rows
    assert row[7] == "elsewhere_on_page 23, copied_demo 6, format 3 (32 of 50 wrong)"
    new = _cell("fewshot", "A", [0.4, 0.0])
    new.run_dir = old.run_dir  # its own counts are read, not the run folder's
    new.test_errors = split_errors_of(_error_classes(3, 12, other_script=1, chatty=1, empty=1))
    BenchResults(cells={new.key: new}).save(tmp_path / "cells.json")
    (row,) = field_table(Merged.of([("f", BenchResults.load(tmp_path / "cells.json"))])).rows
    assert row[7] == "chatty 1, empty 1, other_script 1 (3 of 12 wrong)"


def test_a_cell_without_readable_error_classes_gets_an_empty_cell(tmp_path):
    """No run folder, a run folder gone, a run.json that is not JSON, one without error classes:
    each an empty cell, the rest of its row and the table as usual."""
    cells = [_cell(name, "A", [0.5, 0.5]) for name in ("manual", "fewshot", "retrieval", "quick", "critic_quick")]
    cells[1].run_dir = str(tmp_path / "gone")
    cells[2].run_dir = _run_dir(tmp_path / "bad", "A", None)
    (tmp_path / "bad" / "run.json").write_text("{not json", encoding="utf-8")
    cells[3].run_dir = _run_dir(tmp_path / "old", "A", None)
    cells[4].run_dir = _run_dir(tmp_path / "other pair", "B", _error_classes(1, 2, format=1))
    table = field_table(_merged(*cells))
    assert table.header[7] == "test errors by class"
    assert [(r[1], r[3], r[7]) for r in table.rows] == [(c.optimizer, "0.500", "") for c in cells]


def test_the_gap_to_the_ceiling_is_test_minus_ceiling_over_the_same_test_examples():
    from scripts.ocr_ceiling import Ceiling, CeilingPoint

    cell = _cell("quick", "A", [0.5, 0.2, 0.3], rows=["r0", "r1", "r2"])
    ceiling = Ceiling(0, "reader", True, pairs={"A": [CeilingPoint("r0", 0.1, "x"), CeilingPoint("r1", 0.0, "y"),
                                                      CeilingPoint("r2", 0.2, "z")]})
    merged = Merged.of([("f", BenchResults(cells={cell.key: cell}, ceilings={"0": ceiling.to_json()}))])
    table = field_table(merged)
    assert table.header[7:10] == ["OCR ceiling", "gap to ceiling", "test errors by class"]
    (row,) = table.rows
    assert (row[3], row[7], row[8]) == ("0.333", "0.100", f"{(0.5 + 0.2 + 0.3) / 3 - 0.1:+.3f}") == (
        "0.333", "0.100", "+0.233")
    ceiling.pairs["A"].append(CeilingPoint("r9", 0.9, "w"))  # a test example the cell lacks: not in the gap
    merged = Merged.of([("f", BenchResults(cells={cell.key: cell}, ceilings={"0": ceiling.to_json()}))])
    assert field_table(merged).rows[0][8] == "+0.233"


def test_a_cell_keeps_its_winners_test_error_classes_from_run_json(tmp_path):
    """cell_from_run copies run.json's error_classes.test into the cell (and None when it has none)."""
    run = tmp_path / "run"
    (run / "results").mkdir(parents=True)
    prediction = {"row": "r0", "answer": "a", "prediction": "b", "cer": 1.0}
    (run / "trials.jsonl").write_text(json.dumps({"pair": "A", "split": "test", "prompt": "P",
                                                  "predictions": [prediction]}) + "\n", encoding="utf-8")
    write_csv(run / "results" / "r.csv", [["A", "P", "0.5"]], header=["doc type question type", "optimal prompt",
                                                                      "val_cer"])
    classes = _error_classes(1, 1, elsewhere_on_page=1)
    summary = {"results_csv": "results/r.csv", "pairs": {"A": {"error_classes": {"test": classes, "val": None}}}}
    (run / "run.json").write_text(json.dumps(summary), encoding="utf-8")
    cell = cell_from_run(run, "quick", 0, "A", 10, {}, [])
    assert cell.test_errors == SplitErrors(n=1, wrong=1, counts=classes["counts"])
    summary["pairs"]["A"] = {}
    (run / "run.json").write_text(json.dumps(summary), encoding="utf-8")
    assert cell_from_run(run, "quick", 0, "A", 10, {}, []).test_errors is None


# -- the results file: atomic, resumable ------------------------------------------------


def test_a_failed_write_leaves_the_previous_file_whole(tmp_path):
    path = tmp_path / "cells.json"
    res = BenchResults(cells={"k": _cell("manual", "A", [0.5])})
    res.save(path)
    before = path.read_bytes()
    res.cells["k"].advisor_usage = {"calls": object()}  # not JSON: the write fails half-way
    with pytest.raises(TypeError):
        res.save(path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cells.json"]


def _bench(tmp_path, data, *args, extra=SCRIPTED, **popen):
    cmd = [sys.executable, "scripts/bench_optimizers.py", "--csv", str(data), "--seeds", "0", "--budget", "30",
           "--out", str(tmp_path / "b" / "cells.json"), "--store", str(tmp_path / "b" / "store.sqlite"),
           *args, "--extra", *extra]
    if popen:
        return subprocess.Popen(cmd, cwd=REPO, env=cli_env(), text=True, **popen)
    return subprocess.run(cmd, cwd=REPO, env=cli_env(), capture_output=True, text=True, timeout=300)


def test_a_cell_already_in_the_results_file_is_not_run_again(tmp_path):
    data = make_task(tmp_path / "data", n_images=8)
    out = tmp_path / "b" / "cells.json"
    seeded = _cell("manual", "passport Номер", [0.123], rows=["seeded"])
    BenchResults(settings={"csv": str(data.resolve()), "extra": SCRIPTED, "advisor_calls": None},
                 cells={seeded.key: seeded}).save(out)
    proc = _bench(tmp_path, data, "--optimizers", "manual", "--pairs", "passport Номер", "passport Фамилия")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"skip {seeded.key}: in {out}" in proc.stdout
    res = BenchResults.load(out)
    assert res.cells[seeded.key] == seeded  # kept as it was, not run again
    ran = res.cells[cell_key("manual", 0, "passport Фамилия")]
    assert ran.val_cer == 0.0 and len(ran.test) == 4 and all(p.image_sha256 for p in ran.test)
    (run_dir,) = (tmp_path / "b" / "bench_runs" / "cells" / "seed0" / "manual").iterdir()  # one cell ran
    pairs = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))["pairs"]
    assert list(pairs) == ["passport Фамилия"]
    assert ran.test_errors is not None and ran.test_errors == split_errors_of(
        pairs["passport Фамилия"]["error_classes"]["test"])  # the run's classes, copied into the cell


def _state(pid: int) -> str | None:
    """A process's state letter (``Z``: exited, not yet reaped); None when it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    return out


def test_a_killed_benchmark_keeps_whole_cells_and_the_next_start_runs_the_rest(tmp_path):
    """Killed (SIGKILL, the benchmark alone) while its second cell runs: the file holds the first cell
    whole; the next start skips it and finishes the second (the killed one's run went with it)."""
    data = make_task(tmp_path / "data", n_images=8)
    out = tmp_path / "b" / "cells.json"
    extra = [*SCRIPTED, "model.delay_s=0.7", "model.batch_size=1"]
    args = ("--optimizers", "manual", "--pairs", "passport Номер", "passport Фамилия")
    bench = _bench(tmp_path, data, *args, extra=extra, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    second = cell_key("manual", 0, "passport Фамилия")
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and second not in (BenchResults.load(out).started if out.exists() else {}):
        time.sleep(0.2)
    time.sleep(4)  # the second cell's run is under way
    runs = _children(bench.pid)
    os.kill(bench.pid, signal.SIGKILL)
    bench.wait()
    time.sleep(2)
    assert runs and all(_state(pid) in ("Z", None) for pid in runs)  # the cell's run died with the benchmark
    killed = BenchResults.load(out)  # whole JSON
    first = killed.cells[cell_key("manual", 0, "passport Номер")]
    assert list(killed.cells) == [first.key] and second in killed.started
    proc = _bench(tmp_path, data, *args, extra=extra)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert f"skip {first.key}" in proc.stdout
    done = BenchResults.load(out)
    assert done.cells[first.key] == first and done.cells[second].attempts == 2 and not done.started


def test_a_failed_cell_is_run_again_and_a_run_refusing_its_input_stops_the_benchmark(tmp_path):
    data = make_task(tmp_path / "data", n_images=8)
    flag = tmp_path / "fail.flag"
    flag.touch()
    extra = [*SCRIPTED, 'model.fail_pair="passport Номер"', f"model.fail_flag={flag}"]
    args = ("--optimizers", "manual", "--pairs", "passport Номер", "passport Фамилия")
    proc = _bench(tmp_path, data, *args, extra=extra)
    failed, other = cell_key("manual", 0, "passport Номер"), cell_key("manual", 0, "passport Фамилия")
    assert proc.returncode == 1, proc.stderr[-3000:]
    res = BenchResults.load(tmp_path / "b" / "cells.json")
    assert list(res.cells) == [other] and res.failures[failed]["exit"] == 1  # the next cell still ran
    flag.unlink()
    proc = _bench(tmp_path, data, *args, extra=extra)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = BenchResults.load(tmp_path / "b" / "cells.json")
    assert sorted(res.cells) == sorted([failed, other]) and not res.failures
    # quick needs an advisor: its run exits 2, and so would every later cell's
    proc = _bench(tmp_path, data, "--optimizers", "manual", "quick", "baseline", "--pairs", "passport Номер",
                  extra=extra)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (f"bench_optimizers: stopped: a run exited 2 (see the line above); "
                                                    f"2 cells kept in {tmp_path / 'b' / 'cells.json'}")
    assert "needs an advisor: pass advisor=local" in proc.stderr.splitlines()[0]
    assert sorted(BenchResults.load(tmp_path / "b" / "cells.json").cells) == sorted([failed, other])


def test_a_results_file_of_other_settings_is_refused_and_kept(tmp_path):
    data = make_task(tmp_path / "data", n_images=8)
    out = tmp_path / "b" / "cells.json"
    BenchResults(settings={"csv": str(data.resolve()), "extra": [*SCRIPTED, "split.seed=9"], "advisor_calls": None},
                 cells={"k": _cell("manual", "A", [0.5])}).save(out)
    before = out.read_bytes()
    proc = _bench(tmp_path, data, "--optimizers", "manual", "--pairs", "passport Номер")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"bench_optimizers: {out} holds cells run with extra={[*SCRIPTED, 'split.seed=9']!r}, not {SCRIPTED!r}: "
        "pass another --out (or the same settings)"]
    assert out.read_bytes() == before
    out.write_text("{not json", encoding="utf-8")
    proc = _bench(tmp_path, data, "--optimizers", "manual", "--pairs", "passport Номер")
    assert proc.returncode == 2 and proc.stderr.startswith(f"bench_optimizers: {out}: not a readable JSON file")
    assert out.read_text(encoding="utf-8") == "{not json"


def test_an_unknown_contender_or_pair_stops_before_any_cell(tmp_path):
    data = make_task(tmp_path / "data", n_images=8)
    proc = _bench(tmp_path, data, "--optimizers", "manual", "quik", "--pairs", "passport Номер")
    assert proc.returncode == 2 and proc.stderr.startswith("bench_optimizers: --optimizers 'quik': unknown contender")
    proc = _bench(tmp_path, data, "--optimizers", "manual", "--pairs", "passport Номер", "passport Имя")
    assert proc.returncode == 2 and proc.stderr.startswith("bench_optimizers: pairs not in the task: ['passport Имя']")
    assert len(proc.stderr.strip().splitlines()) == 1 and not (tmp_path / "b" / "bench_runs").exists()


# -- the ceiling ------------------------------------------------------------------------


def _reader_task(root: Path) -> Path:
    """make_task's passports, each page's text (tests.scripted_answer_model.ScriptedReader reads
    <image>.txt) holding its surname with the last letter wrong, amid other text."""
    data = make_task(root, n_images=10, with_second_pair=False)
    with data.open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            page = (root / row["image_path"]).with_suffix(".txt")
            page.write_text(f"ПАСПОРТ РФ\nФамилия: {row['answer'][:-1]}ъ\nвыдан 2011", encoding="utf-8")
    return data


def _ceiling(*overrides):
    return subprocess.run([sys.executable, "scripts/ocr_ceiling.py", *overrides], cwd=REPO, env=cli_env(),
                          capture_output=True, text=True, timeout=300)


def test_the_ceiling_is_measured_on_the_engines_test_split_from_the_models_page_text(tmp_path):
    data = _reader_task(tmp_path / "data")

    def expected(seed):
        (pair,), _ = PairSplitter(val=0.2, seed=seed, near_duplicate_cosine=0.99).split(load_task(data).examples, None)
        return statistics.mean(1 / len(e.answer) for e in pair.test), len(pair.test)

    proc = _ceiling(*READER, "task=csv", f"task.csv={data}", f"paths.store={tmp_path / 's.sqlite'}", "split.seed=2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    (mean, n), other = expected(2), expected(0)[0]
    assert f"{mean:.3f}" != f"{other:.3f}"  # another split would show
    assert f"seed 2 passport Фамилия: best-span CER {mean:.3f} [" in proc.stdout and f"(n={n})" in proc.stdout


def test_no_ceiling_for_a_model_that_reads_pixels(tmp_path):
    data = make_task(tmp_path / "data", n_images=8)
    proc = _ceiling(*SCRIPTED, "task=csv", f"task.csv={data}", f"paths.store={tmp_path / 's.sqlite'}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == "seed 0: Scripted-VLM reads pixels, not text: no OCR ceiling applies"


def test_a_ceiling_without_a_task_csv_or_of_a_missing_table_is_one_line(tmp_path):
    proc = _ceiling(*READER, "task=csv", f"paths.store={tmp_path / 's.sqlite'}")
    assert proc.returncode == 2 and proc.stderr.strip() == "ocr_ceiling: task.csv has no value: pass task.csv=..."
    assert not (tmp_path / "s.sqlite").exists()
    proc = subprocess.run([sys.executable, "scripts/bench_optimizers.py", "--table", str(tmp_path / "none.json")],
                          cwd=REPO, env=cli_env(), capture_output=True, text=True, timeout=120)
    assert (proc.returncode, proc.stderr) == (2, f"bench_optimizers: --table {tmp_path / 'none.json'}: no such file\n")


def test_the_benchmark_measures_the_ceiling_once_per_seed_and_shows_it(tmp_path):
    data = _reader_task(tmp_path / "data")
    args = ("--optimizers", "baseline", "--pairs", "passport Фамилия", "--ceiling")
    proc = _bench(tmp_path, data, *args, extra=READER)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "OCR ceiling (best span) | 0 " in proc.stdout
    for page in (tmp_path / "data" / "images").glob("*.txt"):
        page.unlink()  # measuring it again would fail: the cached one is used
    proc = _bench(tmp_path, data, *args, extra=READER)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "ceiling of seed 0" not in proc.stdout and "OCR ceiling (best span) | 0 " in proc.stdout


@pytest.mark.real
def test_the_ceiling_reads_tesseracts_text_through_the_store(tmp_path):
    """Real Tesseract on rendered receipts: the total is on the page, so the ceiling is 0; with the
    store's cached OCR text replaced, the ceiling follows the store, not a fresh read."""
    from PIL import Image, ImageDraw, ImageFont

    from scripts.demo_data.synthetic_documents import SANS, font_path

    font = ImageFont.truetype(font_path(SANS[0]), 28)
    rows = []
    for i in range(4):
        total = f"{12 + i * 7}.{i}0"
        image = Image.new("RGB", (520, 160), "white")
        ImageDraw.Draw(image).text((20, 30), f"SHOP {i}\nTOTAL RM {total}", fill="black", font=font)
        (tmp_path / "data" / "images").mkdir(parents=True, exist_ok=True)
        image.save(tmp_path / "data" / "images" / f"{i}.png")
        rows.append([f"images/{i}.png", "What is the total?", total, "receipt", "total", ""])
    data = write_csv(tmp_path / "data" / "task.csv", rows)
    store = tmp_path / "store.sqlite"
    overrides = ["task=csv", f"task.csv={data}", f"paths.store={store}", "split.train=0.3", "split.val=0.3",
                 "split.near_duplicate_cosine=null"]  # four look-alike rendered pages: split them as files
    proc = _ceiling(*overrides)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "seed 0 receipt total: best-span CER 0.000 [0.000, 0.000] (n=2)" in proc.stdout
    with sqlite3.connect(store) as db:
        assert db.execute("SELECT COUNT(*) FROM blobs").fetchone()[0] == 2  # the two test pages' OCR text
        db.execute("UPDATE blobs SET value = 'no total here'")
    proc = _ceiling(*overrides)
    assert proc.returncode == 0 and "receipt total: best-span CER 0.000" not in proc.stdout, proc.stdout


# -- the constant answer (scripts/bench_constant.py) ---------------------------------------


def test_the_constant_answer_is_a_contender_on_the_cells_own_test_rows(tmp_path):
    """--constant: each field's train answer best on val, given to every test page of the split the
    cells' runs made, paired with the other contenders by CSV row (no model, nothing stored)."""
    from optimize.constant_answer import constant_answer
    from scripts.ocr_ceiling import compose_config, split_of

    data = make_task(tmp_path / "data", n_images=10, with_second_pair=False)
    proc = _bench(tmp_path, data, "--optimizers", "baseline", "--pairs", "passport Фамилия")
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = tmp_path / "b" / "cells.json"
    before = out.read_text(encoding="utf-8")
    [pair] = split_of(compose_config(["task=csv", f"task.csv={data}", "split.seed=0", *SCRIPTED]), ["passport Фамилия"])
    constant = constant_answer(pair, CerMetric())
    baseline = {p.row: p.cer for p in BenchResults.load(out).cells[cell_key("baseline", 0, pair.key)].test}
    assert sorted(baseline) == sorted(p.row for p in constant.test) and len({p.cer for p in constant.test}) > 1
    diff = statistics.mean(p.cer - baseline[p.row] for p in constant.test)
    table = subprocess.run([sys.executable, "scripts/bench_optimizers.py", "--table", str(out), "--constant",
                            "--reference", "baseline"], cwd=REPO, env=cli_env(), capture_output=True, text=True,
                           timeout=120)
    assert table.returncode == 0, table.stderr[-3000:]
    rows = [line.split(" | ") for line in table.stdout.splitlines() if line.startswith("constant answer ")]
    assert rows[0][2].startswith(f"{constant.test_cer:.3f} [") and rows[0][2].endswith(f"(n={len(pair.test)})")
    assert rows[1][2].startswith(f"{diff:+.3f} [")  # minus baseline, paired by row
    assert any(r[0] == pair.key and r[1].strip() == "constant answer" and r[3].strip() == f"{constant.test_cer:.3f}"
               and r[4].strip() == f"{constant.val_cer:.3f}" for r in (line.split(" | ") for line in
                                                                      table.stdout.splitlines()))
    assert out.read_text(encoding="utf-8") == before  # computed for the table, not stored


def test_the_constant_answer_without_the_task_csv_is_one_line(tmp_path):
    out = tmp_path / "cells.json"
    cell = _cell("manual", "A", [0.5])
    BenchResults(settings={"csv": str(tmp_path / "gone.csv"), "extra": []}, cells={cell.key: cell}).save(out)
    proc = subprocess.run([sys.executable, "scripts/bench_optimizers.py", "--table", str(out), "--constant"],
                          cwd=REPO, env=cli_env(), capture_output=True, text=True, timeout=120)
    assert (proc.returncode, proc.stderr) == (2, "bench_optimizers: --constant: the results file names no task CSV "
                                                 f"that exists here ({str(tmp_path / 'gone.csv')!r})\n")


def _long_or_short_names(root: Path) -> Path:
    """18 shops: two of three named alike at length (NORTHERN STAR TRADING COMPANY 07), every third Z."""
    from tests.task_factory import draw_image

    rows = []
    for i in range(18):
        draw_image(root / f"images/{i}.png", f"shop {i}")
        rows.append([f"images/{i}.png", "Shop name?", "Z" if i % 3 == 0 else f"NORTHERN STAR TRADING COMPANY {i:02d}",
                     "shop", "name", ""])
    return write_csv(root / "task.csv", rows)


def test_the_constant_answer_is_chosen_and_scored_under_the_cells_metric(tmp_path):
    """A metric override of the cells' runs (here clip_at) chooses and scores the constant too: unclipped,
    Z is nearest val (a long name scores about 30 on a Z page); clipped at 1, a long name is."""
    from hydra.utils import instantiate

    from optimize.constant_answer import constant_answer
    from scripts.ocr_ceiling import compose_config, split_of

    data = _long_or_short_names(tmp_path / "data")
    extra = [*SCRIPTED, "metric.clip_at=1.0"]
    cfg = compose_config(["task=csv", f"task.csv={data}", "split.seed=0", *extra])
    [pair] = split_of(cfg, ["shop name"])
    clipped, raw = constant_answer(pair, instantiate(cfg.metric)), constant_answer(pair, CerMetric())
    assert clipped.answer != raw.answer and max(p.cer for p in clipped.test) == 1.0
    out = tmp_path / "cells.json"
    cell = _cell("manual", "shop name", [p.cer for p in clipped.test], rows=[p.row for p in clipped.test])
    BenchResults(settings={"csv": str(data), "extra": extra}, cells={cell.key: cell}).save(out)
    table = subprocess.run([sys.executable, "scripts/bench_optimizers.py", "--table", str(out), "--constant"],
                           cwd=REPO, env=cli_env(), capture_output=True, text=True, timeout=120)
    assert table.returncode == 0, table.stderr[-3000:]
    [row] = [r for r in (line.split(" | ") for line in table.stdout.splitlines())
             if r[0] == "shop name" and r[1].strip() == "constant answer"]
    assert (row[3].strip(), row[4].strip()) == (f"{clipped.test_cer:.3f}", f"{clipped.val_cer:.3f}")


@pytest.mark.parametrize("extra, pair", [(["model=no_such_model"], "shop name"), ([], "shop gone")])
def test_a_constant_that_cannot_be_composed_is_one_line(tmp_path, extra, pair):
    """An override that no longer composes, or a field the CSV lost: one line, exit 2, no traceback."""
    data, out = _long_or_short_names(tmp_path / "data"), tmp_path / "cells.json"
    cell = _cell("manual", pair, [0.5])
    BenchResults(settings={"csv": str(data), "extra": extra}, cells={cell.key: cell}).save(out)
    proc = subprocess.run([sys.executable, "scripts/bench_optimizers.py", "--table", str(out), "--constant"],
                          cwd=REPO, env=cli_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.startswith("bench_optimizers: ") and proc.stderr.count("\n") == 1, \
        proc.stderr[-3000:]


def test_the_constant_of_several_files_comes_from_each_files_split_and_one_that_differs_is_refused(tmp_path):
    """Each file's seeds get their constant (b's seed 1 too); a file that differs only in the model shares
    a's constant, one whose split differs (split.val) is refused in one line."""
    data = _long_or_short_names(tmp_path / "data")
    files = {"a": ([], 0), "b": (["model.demo_chars=300"], 1), "c": (["split.val=0.2"], 0)}
    for name, (extra, seed) in files.items():
        cell = _cell("manual" if name == "a" else f"quick_{name}", "shop name", [0.5], seed=seed)
        results = BenchResults(settings={"csv": str(data), "extra": extra}, cells={cell.key: cell})
        results.save(tmp_path / f"{name}.json")

    def table(*names):
        return subprocess.run([sys.executable, "scripts/bench_optimizers.py", "--table",
                               *(str(tmp_path / f"{n}.json") for n in names), "--constant"],
                              cwd=REPO, env=cli_env(), capture_output=True, text=True, timeout=120)

    same = table("a", "b")
    assert same.returncode == 0, same.stderr[-3000:]
    seeds = {r[1].strip() for r in (line.split(" | ") for line in same.stdout.splitlines())
             if r[0] == "constant answer" and "(n=" in r[2]}
    assert seeds == {"0", "1"}, same.stdout
    other = table("a", "c")
    assert (other.returncode, other.stderr) == (2, f"bench_optimizers: --constant: {tmp_path / 'a.json'} and "
                                                   f"{tmp_path / 'c.json'} split or score 'shop name' of seed 0 "
                                                   "differently (their task CSV or overrides): no one constant "
                                                   "answer fits both\n")


def test_a_resumed_cells_seconds_leave_out_the_cells_run_between_its_attempts(tmp_path):
    """Cell X is killed at 150, cell Y runs from 200, X resumes at 300: X's answer-model seconds are
    its two attempts' (5 + 7), not the 50 of Y's run inside the span from X's first start to its end."""
    from scripts.bench_results import attempt_seconds, store_seconds

    store = tmp_path / "s.sqlite"
    with sqlite3.connect(store) as db:
        db.execute("CREATE TABLE timings (kind TEXT NOT NULL, name TEXT NOT NULL, n INTEGER NOT NULL, "
                   "seconds REAL NOT NULL, prompt_tokens INTEGER NOT NULL DEFAULT 0, "
                   "completion_tokens INTEGER NOT NULL DEFAULT 0, created REAL NOT NULL)")
        db.executemany("INSERT INTO timings (kind, name, n, seconds, created) VALUES (?, 'm', 1, ?, ?)",
                       [("answer", 5.0, 110.0), ("answer", 50.0, 250.0), ("advisor", 3.0, 260.0),
                        ("answer", 7.0, 350.0), ("advisor", 2.0, 360.0)])
    assert attempt_seconds(store, [100.0, 300.0], [100.0, 200.0, 300.0], 400.0) == {"answer": 12.0, "advisor": 2.0}
    assert store_seconds(store, 100.0, 400.0) == {"answer": 62.0, "advisor": 5.0}  # the span, Y's run inside
    assert attempt_seconds(store, [200.0], [100.0, 200.0, 300.0], 400.0) == {"answer": 50.0, "advisor": 3.0}
