"""The command line as a user runs it: results, bad input, filtering, kill and resume."""

import csv
import json
import signal
import subprocess
import sys
import time

from tests.cli_helpers import REPO, cli_args, cli_env, run_cli
from tests.task_factory import make_task


def _csv_rows(path):
    with path.open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_run_writes_seed_named_outputs(tmp_path):
    data = make_task(tmp_path / "data", n_images=8)
    proc = run_cli(tmp_path, data)
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "out"
    rows = _csv_rows(out / "Scripted-VLM_sep_none.csv")
    assert len(rows) == 2 and all(r["optimal prompt"] and r["cer"] for r in rows)
    assert (out / "Scripted-VLM_sep_OptimalPrompts.csv").is_file()
    # the results folder keeps the run under its task and run id, and the task's merged files beside
    (task_dir,) = (tmp_path / "results").glob("task-*")
    assert (task_dir / "runs" / summary_run_id(out) / "Scripted-VLM_sep_none.csv").is_file()
    assert (task_dir / "Scripted-VLM_sep_none.csv").is_file()
    assert (task_dir / "Scripted-VLM_sep_OptimalPrompts.csv").is_file()
    summary = json.loads((out / "run.json").read_text())
    assert summary["mean_test_cer"] == 0.0  # conf/optimizer/manual.yaml has an "only value" prompt
    assert len((out / "trials.jsonl").read_text().splitlines()) >= 4
    saved = (out / ".hydra" / "config.yaml").read_text()
    assert "scripted_answer_model" in saved


def summary_run_id(out):
    return json.loads((out / "run.json").read_text())["run_id"]


def test_pairs_filter_and_budget_override(tmp_path):
    data = make_task(tmp_path / "data", n_images=8)
    proc = run_cli(tmp_path, data, 'pairs=["passport Фамилия"]', "budget.evaluations_per_pair=3")
    assert proc.returncode == 0, proc.stderr
    rows = _csv_rows(tmp_path / "out" / "Scripted-VLM_sep_none.csv")
    assert [r["doc type question type"] for r in rows] == ["passport Фамилия"]
    # 8 images -> 3 train / 2 val / 3 test: the baseline costs 2, a second candidate would exceed 3
    assert rows[0]["optimal prompt"] == "{question}" and rows[0]["answer_model_evaluations"] == "5"


def test_bad_input_exits_nonzero_before_any_model_call(tmp_path):
    data = make_task(tmp_path / "data", n_images=4)
    (tmp_path / "data/images/2.png").unlink()
    calls = tmp_path / "calls.log"
    proc = run_cli(tmp_path, data, f"model.calls_log={calls}")
    assert proc.returncode == 2
    assert str(data) in proc.stderr and "row 5 (line 6)" in proc.stderr and "image file not found" in proc.stderr
    assert not calls.exists()

    proc = run_cli(tmp_path, data, "task.on_bad_row=skip", f"model.calls_log={calls}")
    assert proc.returncode == 0, proc.stderr
    assert "skipped 2 bad row(s)" in proc.stderr


def test_unknown_pair_is_an_error(tmp_path):
    data = make_task(tmp_path / "data", n_images=4)
    proc = run_cli(tmp_path, data, 'pairs=["invoice Сумма"]')
    assert proc.returncode == 2 and "available" in proc.stderr


def test_help_lists_config_groups():
    proc = subprocess.run([sys.executable, "-m", "optimize", "--help"], cwd=REPO, env=cli_env(),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    for group in ("optimizer:", "model:", "advisor:", "task:"):
        assert group in proc.stdout


def test_sigkill_mid_run_then_resume_recomputes_nothing(tmp_path):
    """Kill -9 in the middle, re-run the same command: no cached answer is recomputed and
    the final CSV equals an uninterrupted run's."""
    data = make_task(tmp_path / "data", n_images=12)
    # Uninterrupted reference run in its own store.
    ref_dir = tmp_path / "reference"
    ref_calls = ref_dir / "calls.log"
    ref_dir.mkdir()
    ref = run_cli(ref_dir, data, f"model.calls_log={ref_calls}", "model.batch_size=2")
    assert ref.returncode == 0, ref.stderr
    total_calls = len(ref_calls.read_text().splitlines())

    work = tmp_path / "work"
    work.mkdir()
    calls = work / "calls.log"
    overrides = (f"model.calls_log={calls}", "model.batch_size=2", "model.delay_s=0.15")
    args = cli_args(work, data, *overrides)
    proc = subprocess.Popen(args, cwd=REPO, env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline:  # kill once the run is well into the second pair
        if calls.exists() and len(calls.read_text().splitlines()) >= total_calls * 0.6:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    calls_before = len(calls.read_text().splitlines())
    assert 0 < calls_before < total_calls, "the kill must land mid-run"

    import sqlite3

    cached = sqlite3.connect(work / "store.sqlite").execute("SELECT COUNT(*) FROM answers").fetchone()[0]
    resumed = run_cli(work, data, *overrides)  # the same command again
    assert resumed.returncode == 0, resumed.stderr
    calls_after = len(calls.read_text().splitlines()) - calls_before
    # Exactly the answers not in the cache are computed: nothing cached is recomputed.
    assert calls_after == total_calls - cached
    assert "already finished" in resumed.stderr  # the first pair was not redone
    name = "Scripted-VLM_sep_none.csv"
    assert (work / "out" / name).read_bytes() == (ref_dir / "out" / name).read_bytes()
    trials = lambda d: [{k: v for k, v in json.loads(line).items() if k != "run_id"}  # noqa: E731
                        for line in (d / "out" / "trials.jsonl").read_text().splitlines()]
    assert trials(work) == trials(ref_dir)
