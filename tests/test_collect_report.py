"""The results folder where runs meet, `python -m optimize.collect`, and the HTML reports."""

import csv
import json
import multiprocessing
import re
import shutil
import subprocess
import sys
import time

import pytest

from optimize.collect import rebuild_task
from optimize.results_files import MERGED_COLUMNS, PAIR_PROMPT_CER_COLUMNS
from optimize.stats import bootstrap_interval
from prompt_opt_api.prompt_book import load_book
from optimizers.manual import ManualOptimizer
from prompt_opt_api import MANUAL
from tests.cli_helpers import REPO, cli_env, run_cli
from tests.engine_harness import run_engine
from tests.scripted_answer_model import ScriptedAnswerModel
from tests.task_factory import draw_image, make_task, write_csv

EXACT = "{question} Ответь только значением."  # the scripted model answers exactly
VAGUE = "Опиши документ."  # ...wrongly: the baseline "{question}" (one character short) wins


class _OtherOptimizer(ManualOptimizer):
    name = "other"


def _run(tmp_path, data, advisor, candidates, out, run_id, optimizer=ManualOptimizer, **kwargs):
    """``optimizer(candidates)`` on ``data``, named as advisor ``advisor``'s run, kept in the results folder."""
    return run_engine(tmp_path, optimizer(candidates), data=data, advisor_name=advisor, out=out, run_id=run_id,
                      results=True, **kwargs).summary


def _rows(path):
    with path.open(encoding="utf-8", newline="") as fh:
        return {r["doc type question type"]: r for r in csv.DictReader(fh)}


def _header(path):
    with path.open(encoding="utf-8", newline="") as fh:
        return next(csv.reader(fh))


def _task_dirs(results):
    return sorted(p for p in results.iterdir() if p.is_dir())


def test_runs_are_kept_apart_and_merged_per_advisor_and_task(tmp_path):
    data = make_task(tmp_path / "data", n_images=10)
    _run(tmp_path, data, "A", [VAGUE], "o1", "r1")
    _run(tmp_path, data, "A", [EXACT], "o2", "r2", optimizer=_OtherOptimizer)  # a sweep over optimizers, one advisor
    _run(tmp_path, data, "B", [VAGUE], "o3", "r3")
    (task_dir,) = _task_dirs(tmp_path / "results")
    for run_id in ("r1", "r2", "r3"):  # nothing overwritten: every run under its id
        assert (task_dir / "runs" / run_id / "run.json").is_file()
    assert sorted(p.name for p in (task_dir / "runs" / "r1").iterdir()) == [
        "Scripted-VLM_sep_A.book.json", "Scripted-VLM_sep_A.csv", "run.json"]

    # The advisor's file is the best per pair across that advisor's runs, by val CER.
    for name in ("Scripted-VLM_sep_A.csv", "Scripted-VLM_sep_B.csv", "Scripted-VLM_sep_OptimalPrompts.csv"):
        assert tuple(_header(task_dir / name)) == MERGED_COLUMNS
        assert tuple(_header(task_dir / name)[:3]) == PAIR_PROMPT_CER_COLUMNS
    a = _rows(task_dir / "Scripted-VLM_sep_A.csv")
    assert {r["run_id"] for r in a.values()} == {"r2"} and {r["optimizer"] for r in a.values()} == {"other"}
    b = _rows(task_dir / "Scripted-VLM_sep_B.csv")
    assert {r["optimal prompt"] for r in b.values()} == {"{question}"} and float(b["passport Фамилия"]["val_cer"]) > 0
    best = _rows(task_dir / "Scripted-VLM_sep_OptimalPrompts.csv")
    assert {(r["advisor"], r["run_id"], r["optimal prompt"]) for r in best.values()} == {("A", "r2", EXACT)}
    # each merged CSV has a book beside it whose entries are its rows' winners, from their runs
    for name in ("Scripted-VLM_sep_A.csv", "Scripted-VLM_sep_B.csv", "Scripted-VLM_sep_OptimalPrompts.csv"):
        book = load_book(task_dir / name.replace(".csv", ".book.json"))
        rows = _rows(task_dir / name)
        assert {e.key: (e.run_id, e.template, e.advisor) for e in book.entries} == {
            k: (r["run_id"], r["optimal prompt"], r["advisor"]) for k, r in rows.items()}
    low, high = float(b["passport Фамилия"]["cer_ci_low"]), float(b["passport Фамилия"]["cer_ci_high"])
    assert low <= float(b["passport Фамилия"]["cer"]) <= high and high > 0

    # A run on another task meets only its own task's runs, even with a better prompt.
    other = make_task(tmp_path / "other", n_images=9)
    _run(tmp_path, other, "B", [EXACT], "o4", "r4")
    task_dirs = _task_dirs(tmp_path / "results")
    assert len(task_dirs) == 2 and task_dir in task_dirs
    assert _rows(task_dir / "Scripted-VLM_sep_B.csv") == b
    assert not (task_dir / "runs" / "r4").exists()

    run = json.loads((task_dir / "runs" / "r2" / "run.json").read_text(encoding="utf-8"))
    assert run["task_id"] == task_dir.name and run["advisor"] == "A" and run["optimizer"] == "other"
    pair = run["pairs"]["passport Фамилия"]
    assert len(pair["test_cers"]) == pair["n_test"] == 3
    assert pair["top"][0]["prompt"] == EXACT and pair["curve"][-1][1] == 0.0
    assert [x for x, _ in pair["curve"]] == sorted(x for x, _ in pair["curve"])


def _fake_run(task_dir, run_id, advisor, rows, finished="2026-01-01T00:00:00", pairs=None,
              header=("doc type question type", "optimal prompt", "cer", "val_cer", "status")):
    """A run in the results layout, written by hand."""
    run_dir = task_dir / "runs" / run_id
    run_dir.mkdir(parents=True)
    with (run_dir / f"M_sep_{advisor}.csv").open("w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows([header, *rows])
    record = {"run_id": run_id, "task_id": task_dir.name, "model": "M", "advisor": advisor, "optimizer": "critic",
              "finished_at": finished, "pairs": pairs or {}}
    (run_dir / "run.json").write_text(json.dumps(record), encoding="utf-8")


def test_winner_is_chosen_by_val_never_by_test(tmp_path):
    task_dir = tmp_path / "results" / "task-x"
    _fake_run(task_dir, "r1", "A", [["p q", "val-better", "0.5000", "0.1000", "ok"],
                                    ["x y", "failed one", "", "", "failed: boom"]])
    _fake_run(task_dir, "r2", "B", [["p q", "test-better", "0.0000", "0.2000", "ok"],
                                    ["x y", "only one", "0.3000", "", "ok; no full val"]])
    _fake_run(task_dir, "r3", "A", [["p q", "tie on val, longer", "0.0000", "0.1000", "ok"]])
    result = rebuild_task(task_dir, report=False)
    best = _rows(task_dir / "M_sep_OptimalPrompts.csv")
    assert best["p q"]["optimal prompt"] == "val-better" and best["p q"]["cer"] == "0.5000"  # copied as written
    assert best["x y"]["optimal prompt"] == "only one"  # a failed pair has nothing to offer
    assert _rows(task_dir / "M_sep_A.csv")["p q"]["run_id"] == "r1"
    assert set(result["optimal"]) == {"M"} and result["runs"] == 3


def test_matrix_gives_a_panels_members_their_own_columns(tmp_path):
    task_dir = tmp_path / "results" / "task-x"
    header = ("doc type question type", "optimal prompt", "cer", "val_cer", "status", "author")
    by_author = {"Fake": {"val_cer": 0.3, "test_cer": 0.4, "prompt": "p1"},
                 "Fake2": {"val_cer": 0.1, "test_cer": 0.2, "prompt": "p2"},
                 "dataset": {"val_cer": 0.5, "test_cer": None, "prompt": "{question}"}}
    _fake_run(task_dir, "r1", "Fake+Fake2", [["p q", "p2", "0.2000", "0.1000", "ok", "Fake2"]],
              pairs={"p q": {"by_author": by_author}}, header=header)
    _fake_run(task_dir, "r2", "GPT", [["p q", "p3", "0.0000", "0.2000", "ok", "GPT"]], header=header)
    report = rebuild_task(task_dir, report=True)["report"].read_text(encoding="utf-8")
    matrix = report[report.index("<table class='matrix'>"):]
    matrix = matrix[:matrix.index("</table>")]
    assert [c for c in re.findall(r"<th>([^<]*)</th>", matrix)][:5] == [
        "pair", "Fake+Fake2", "GPT", "Fake (in Fake+Fake2)", "Fake2 (in Fake+Fake2)"]
    assert re.findall(r">([0-9.]+(?: ★)?)</td>", matrix) == ["0.200 ★", "0.000", "0.400", "0.200 ★"]


def _publish_one(results, i):
    import csv as csv_
    from pathlib import Path

    from optimize.collect import publish_run as publish
    from optimize.run_record import RunRecord

    src = Path(results).parent / f"src{i}" / "M_sep_A.csv"
    src.parent.mkdir(parents=True, exist_ok=True)
    with src.open("w", encoding="utf-8", newline="") as fh:
        csv_.writer(fh).writerows([["doc type question type", "optimal prompt", "cer", "val_cer"],
                                   [f"pair {i}", f"prompt {i}", "0.1000", "0.1000"]])
    publish(Path(results), RunRecord(run_id=f"r{i}", task_id="task-p", model="M", advisor="A", optimizer="manual"),
            src)


def test_parallel_runs_finishing_together_all_enter_the_merge(tmp_path):
    results = tmp_path / "results"
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_publish_one, args=(str(results), i)) for i in range(6)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert set(_rows(results / "task-p" / "M_sep_OptimalPrompts.csv")) == {f"pair {i}" for i in range(6)}
    assert not list((results / "task-p").glob(".*.tmp"))  # atomic writes leave no temp files


def test_bootstrap_interval_is_seeded_and_brackets_the_mean():
    values = [0.0, 0.0, 0.5, 1.0, 0.2]
    low, high = bootstrap_interval(values)
    assert low <= sum(values) / len(values) <= high and (low, high) == bootstrap_interval(values)
    assert bootstrap_interval([0.25, 0.25]) == (0.25, 0.25)


def test_cli_run_writes_reports_and_a_summary_and_collect_rebuilds(tmp_path):
    data = make_task(tmp_path / "data", n_images=8)
    proc = run_cli(tmp_path, data, "model.exact_marker=NOPE")  # errors remain: the report shows them
    assert proc.returncode == 0, proc.stderr
    run_id = json.loads((tmp_path / "out/run.json").read_text())["run_id"]
    assert "mean test CER" in proc.stderr and "winners by author: dataset 2" in proc.stderr
    assert "answer-model evaluations" in proc.stderr and f"report: {tmp_path / 'out' / 'report.html'}" in proc.stderr
    (task_dir,) = _task_dirs(tmp_path / "results")
    assert (task_dir / "runs" / run_id / "report.html").is_file() and (task_dir / "report.html").is_file()
    report = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    assert "data:image/jpeg;base64," in report and "data:image/png;base64," in report and "<script" not in report

    # Another split seed is another task: its own folder, its own merge.
    proc = run_cli(tmp_path, data, "split.seed=1", "report=false", out="out2")
    assert proc.returncode == 0, proc.stderr
    assert len(_task_dirs(tmp_path / "results")) == 2 and not (tmp_path / "out2" / "report.html").exists()

    merged = {p: p.read_bytes() for p in task_dir.glob("*.csv")}
    for path in [*merged, task_dir / "report.html"]:
        path.unlink()
    proc = subprocess.run([sys.executable, "-m", "optimize.collect", str(tmp_path / "results")], cwd=REPO,
                          env=cli_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert {p: p.read_bytes() for p in task_dir.glob("*.csv")} == merged
    assert (task_dir / "report.html").is_file() and "won by none 2" in proc.stdout


def test_collect_help_is_fast_and_imports_no_pandas():
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "optimize.collect", "--help"], cwd=REPO, env=cli_env(),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "RESULTS_DIR" in proc.stdout.upper()
    assert time.monotonic() - started < 10
    proc = subprocess.run([sys.executable, "-c", "import sys, optimize.collect, optimize.report, optimize.run_loop; "
                           "print(sorted(m for m in ('pandas', 'matplotlib') if m in sys.modules))"],
                          cwd=REPO, env=cli_env(), capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == "[]", proc.stderr


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if shutil.which(name):
            return shutil.which(name)
    return None


# Marks the page with what rendered: images decoded, tables laid out with rows.
_CHECK = """<script>
addEventListener("load", () => {
  const imgs = [...document.images];
  const ok = imgs.filter(i => i.complete && i.naturalWidth > 0 && i.getBoundingClientRect().width > 0).length;
  const tables = [...document.querySelectorAll("table")];
  const shown = tables.filter(t => t.rows.length > 1 && t.getBoundingClientRect().height > 0).length;
  const page = document.documentElement;
  document.body.setAttribute("data-check",
    `images ${ok}/${imgs.length} tables ${shown}/${tables.length} width ${page.scrollWidth}/${page.clientWidth}`);
});
</script>"""


@pytest.mark.real
@pytest.mark.skipif(_chromium() is None, reason="headless Chromium not installed (Debian package `chromium`; "
                    "scripts/setup.sh installs it)")
def test_report_renders_in_headless_chromium(tmp_path):
    data = make_task(tmp_path / "data", n_images=10)
    _run(tmp_path, data, "A", [VAGUE], "o1", "r1", model=ScriptedAnswerModel(exact_marker="NOPE"))
    _run(tmp_path, data, "B", [VAGUE], "o2", "r2", report=True)  # the winners keep errors to show
    (task_dir,) = _task_dirs(tmp_path / "results")
    report = task_dir / "report.html"
    html = report.read_text(encoding="utf-8")
    assert "<script" not in html  # self-contained and static; the check below is added to a copy
    proc, (images_ok, images, tables_ok, tables, _, _) = _render(tmp_path, report)
    # two figures (matrix, curves) and the page crops of the worst errors, all decoded
    assert images_ok == images >= 3
    # runs, best per pair, advisor x pair matrix, a leaderboard per pair: all laid out with rows
    assert tables_ok == tables >= 5
    console = [line for line in proc.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert console == []
    # the matrix shows both advisors and the val-chosen winner
    assert "★" in proc.stdout and ">A<" in proc.stdout and ">B<" in proc.stdout


def _render(tmp_path, report):
    """The report in headless Chromium in a 1,400-pixel-wide window: what rendered, and the page's width."""
    page = tmp_path / "check.html"
    page.write_text(report.read_text(encoding="utf-8").replace("</body>", _CHECK + "</body>"), encoding="utf-8")
    proc = subprocess.run(
        [_chromium(), "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run", "--disable-extensions",
         f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0", "--window-size=1400,1000",
         "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0, proc.stderr[-2000:]
    check = re.search(r'data-check="images (\d+)/(\d+) tables (\d+)/(\d+) width (\d+)/(\d+)"', proc.stdout)
    assert check, proc.stdout[-2000:] + proc.stderr[-2000:]
    return proc, tuple(map(int, check.groups()))


class _DemoOptimizer(ManualOptimizer):
    """Scores each candidate with two train demos (the scripted model then answers exactly)."""

    name = "demos"

    def optimize(self, pair, evaluator, advisor):
        from prompt_opt_api import Prompt, Trial

        prompts = [Prompt(text, demos=pair.train[:2], provenance=MANUAL) for text in self.candidates]
        return [Trial(p, "val", evaluator.score(p, pair.val)) for p in prompts]


@pytest.mark.real
@pytest.mark.skipif(_chromium() is None, reason="headless Chromium not installed (Debian package `chromium`; "
                    "scripts/setup.sh installs it)")
def test_report_shows_demo_winners_and_fits_a_1400_pixel_page(tmp_path):
    data = make_task(tmp_path / "data", n_images=10)
    long_prompt = "Прочитай документ внимательно, строку за строкой. " * 12 + "{question}"
    _run(tmp_path, data, "A", [long_prompt], "o1", "r1", optimizer=_DemoOptimizer, report=True,
         model=ScriptedAnswerModel(demos_exact=True))
    (task_dir,) = _task_dirs(tmp_path / "results")
    html = (task_dir / "report.html").read_text(encoding="utf-8")
    assert "Winners with their demos" in html and html.count("alt='demo page'") == 4  # 2 pairs x 2 demos
    assert "Scripted-VLM_sep_OptimalPrompts.book.json" in html
    _, (images_ok, images, tables_ok, tables, width, window) = _render(tmp_path, task_dir / "report.html")
    assert images_ok == images >= 4 and tables_ok == tables
    assert width <= window <= 1400  # no page-wide scrolling: long prompts wrap, wide tables scroll in their own box


def test_a_run_folders_merge_reads_only_its_own_file(tmp_path):
    from optimize.results_files import merge_optimal_prompts, write_results_csv

    row = {"doc type question type": "passport Фамилия", "optimal prompt": "{question}", "cer": 0.5, "val_cer": 0.5}
    write_results_csv(tmp_path / "M_sep_Mine.csv", [row])
    write_results_csv(tmp_path / "M_sep_Other.csv", [dict(row, **{"optimal prompt": "{q}", "val_cer": 0.1}),
                                                     dict(row, **{"doc type question type": "passport Имя"})])
    out = merge_optimal_prompts(tmp_path, "M", run_id="run-1", own_csv="M_sep_Mine.csv")
    with out.open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["doc type question type"], r["optimal prompt"], r["run_id"]) for r in rows] == [
        ("passport Фамилия", "{question}", "run-1")]  # the other file's better val CER is not this run's


def test_two_runs_of_different_tasks_in_one_folder_keep_its_merged_files_their_own(tmp_path):
    """A reused run folder (one ``hydra.run.dir``): its OptimalPrompts CSV and book show the last
    run's own winners, never a winner of the other task's run, whatever its val CER."""
    other = make_task(tmp_path / "other", n_images=10)
    _run(tmp_path, other, "A", [EXACT], "o", "r1", report=True)  # another task: exact answers, val CER 0
    with (tmp_path / "o" / "Scripted-VLM_sep_OptimalPrompts.csv").open(encoding="utf-8") as fh:
        assert {r["optimal prompt"] for r in csv.DictReader(fh)} == {EXACT}  # a run alone: its own winners
    data = make_task(tmp_path / "data", n_images=9)
    summary = _run(tmp_path, data, "B", [VAGUE], "o", "r2", report=True)  # this task: the baseline wins, val CER > 0
    own = {r["doc type question type"]: r["optimal prompt"] for r in summary.rows}
    assert set(own.values()) == {"{question}"}
    with (tmp_path / "o" / "Scripted-VLM_sep_OptimalPrompts.csv").open(encoding="utf-8") as fh:
        merged = list(csv.DictReader(fh))
    assert {r["doc type question type"]: r["optimal prompt"] for r in merged} == own
    assert {r["advisor"] for r in merged} == {"B"} and {r["run_id"] for r in merged} == {"r2"}
    book = load_book(tmp_path / "o" / "Scripted-VLM_sep_OptimalPrompts.book.json")
    assert {e.template for e in book.entries} == {"{question}"} and {e.run_id for e in book.entries} == {"r2"}
    html = (tmp_path / "o" / "report.html").read_text(encoding="utf-8")
    assert "Scripted-VLM_sep_B.book.json" in html and "Scripted-VLM_sep_A.book.json" not in html


def test_a_run_with_no_winner_leaves_no_book_of_another_run_beside_its_csv(tmp_path):
    other = make_task(tmp_path / "other", n_images=10)
    _run(tmp_path / "first", other, "A", [EXACT], "../o", "r1")  # its own store: nothing cached for the next run
    assert (tmp_path / "o" / "Scripted-VLM_sep_A.book.json").is_file()
    data = make_task(tmp_path / "data", n_images=9, with_second_pair=False)
    _run(tmp_path, data, "A", [VAGUE], "o", "r2", model=ScriptedAnswerModel(fail_pair="passport Фамилия"))
    with (tmp_path / "o" / "Scripted-VLM_sep_A.csv").open(encoding="utf-8") as fh:
        assert [r["status"][:7] for r in csv.DictReader(fh)] == ["failed:"]
    assert not (tmp_path / "o" / "Scripted-VLM_sep_A.book.json").exists()  # the other task's book is gone
    assert not list((tmp_path / "results").glob("*/runs/r2/*.book.json"))  # and was not published as this run's


@pytest.mark.parametrize("doc_class, question_type", [("$\\frac{a}{$", "<b>Фамилия</b>"), ("passport", "Фамилия")])
def test_both_reports_survive_any_pair_name(tmp_path, doc_class, question_type):
    """A ``$`` is a dollar sign in the figures (no mathtext), and markup in a name is text in the page."""
    rows = [[f"images/{i}.png", "Какая фамилия?", name, doc_class, question_type, ""]
            for i, name in enumerate(["Иванов", "Петрова", "Сидоров", "Кузнецова", "Смирнов", "Попова"])]
    for i in range(len(rows)):
        draw_image(tmp_path / "data" / "images" / f"{i}.png", f"doc {i}")
    data = write_csv(tmp_path / "data" / "task.csv", rows)
    _run(tmp_path, data, "A$^{x}$", [VAGUE], "o", "r1", report=True)
    (task_dir,) = _task_dirs(tmp_path / "results")
    shown = f"{doc_class} {question_type}".replace("<", "&lt;").replace(">", "&gt;")
    for report in (tmp_path / "o" / "report.html", task_dir / "report.html"):
        html = report.read_text(encoding="utf-8")
        assert html.count("<figure><img") == 2  # the advisor x pair matrix and the val-CER curve
        assert f"<h3>{shown} (test CER" in html and "<b>Фамилия</b>" not in html


def test_the_report_shows_why_the_winners_miss_by_error_class():
    import pandas as pd

    from optimize.report_errors import error_classes_section

    best = pd.DataFrame([{"run_id": "r1", "doc type question type": "receipt total"},
                         {"run_id": "r1", "doc type question type": "receipt date"}])
    counts = {"copied_demo": 2, "format": 0, "chatty": 0}
    digests = {("r1", "receipt total"): {"error_classes": {
        "val": {"n": 3, "wrong": 2, "counts": counts, "most_copied": 2, "copied_of": 3},
        "test": None}}}  # a record made before answers were classified: no row, no guess
    html = error_classes_section(best, lambda run, pair: digests.get((run, pair), {}))
    assert "receipt total" in html and "2 of 3" in html and "2 of 3 (over a quarter)" in html
    assert "<th>copied_demo</th>" in html and "<th>format</th>" not in html  # classes no winner shows stay out
    assert "receipt date" not in html
    assert "No winner's answers are classified" in error_classes_section(best, lambda run, pair: {})
