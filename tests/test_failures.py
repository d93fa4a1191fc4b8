"""One pair's failure is not the run's; an unreachable endpoint stops the run at once."""

import csv
import json

import pytest

from models.llama_server import free_port
from prompt_opt_api import Advisor, AdvisorError
from tasks.docqa_csv import load_task
from tasks.pair_splits import PairSelectionError, SplitConfig, split_pairs
from tests.cli_helpers import run_cli
from tests.engine_harness import AskingOptimizer, run_engine
from tests.task_factory import make_task, write_csv


def _rows(path):
    with path.open(encoding="utf-8") as fh:
        return {r["doc type question type"]: r for r in csv.DictReader(fh)}


def test_model_error_fails_that_pair_only_and_rerun_retries_only_it(tmp_path):
    data = make_task(tmp_path / "data", n_images=8)
    flag = tmp_path / "broken"
    flag.touch()
    calls = tmp_path / "calls.log"
    overrides = (f"model.calls_log={calls}", "model.fail_pair='passport Номер'", f"model.fail_flag={flag}")
    first = run_cli(tmp_path, data, *overrides)
    assert first.returncode == 1, first.stderr
    assert "pair 'passport Номер' failed: RuntimeError: scripted failure" in first.stderr
    rows = _rows(tmp_path / "out/Scripted-VLM_sep_none.csv")
    assert rows["passport Номер"]["status"].startswith("failed: RuntimeError: scripted failure")
    assert rows["passport Номер"]["cer"] == "" and rows["passport Фамилия"]["cer"] == "0.0000"
    summary = json.loads((tmp_path / "out/run.json").read_text())
    assert summary["failed_pairs"] == ["passport Номер"]
    (optimal_csv,) = (tmp_path / "results").glob("task-*/Scripted-VLM_sep_OptimalPrompts.csv")
    optimal = _rows(optimal_csv)
    assert set(optimal) == {"passport Фамилия"}  # a failed pair has no prompt to offer
    calls_first = calls.read_text().splitlines()

    flag.unlink()  # the cause is fixed: the same command retries only the failed pair
    second = run_cli(tmp_path, data, *overrides, out="out2")
    assert second.returncode == 0, second.stderr
    assert "pair 'passport Фамилия' already finished" in second.stderr
    new_calls = calls.read_text().splitlines()[len(calls_first):]
    # 8 images: 3 train / 2 val / 3 test; 4 candidates on val + the winner on test
    assert len(new_calls) == 4 * 2 + 3
    rows = _rows(tmp_path / "out2/Scripted-VLM_sep_none.csv")
    assert rows["passport Номер"]["status"] == "ok" and rows["passport Номер"]["cer"] == "0.0000"



class _FlakyAdvisor(Advisor):
    name = "flaky"

    def complete(self, messages):
        if "Номер" in messages[0]["content"]:
            raise AdvisorError("advisor 'flaky' gave no usable reply: 500 three times")
        return "ok"


def test_advisor_error_fails_that_pair_and_keeps_its_scores(tmp_path):
    run = run_engine(tmp_path, AskingOptimizer(), session=_FlakyAdvisor(), run_id="r", n_images=8, two_pairs=True)
    summary, store = run.summary, run.store
    assert summary.failed_pairs == ["passport Номер"]
    rows = {r["doc type question type"]: r for r in summary.rows}
    assert rows["passport Номер"]["status"] == "failed: AdvisorError: advisor 'flaky' gave no usable reply: 500 three times"
    assert rows["passport Фамилия"]["status"] == "ok"
    # the failed pair's scores are in the store (its answers cached), but it is not finished
    assert len(store.trials("r", "passport Номер")) == 1
    assert store.finished_result("r", "passport Номер") is None
    assert store.finished_result("r", "passport Фамилия") is not None


def test_unreachable_answer_model_stops_at_once_with_one_line(tmp_path):
    data = make_task(tmp_path / "data", n_images=8)
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    proc = run_cli(tmp_path, data, f"model.api_base={url}", "model.num_retries=1", "model.retry_initial_wait_s=0.1", model="openai_vlm")
    assert proc.returncode == 3, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "[ERROR]" in line]
    assert len(errors) == 1 and url in errors[0] and "vllm serve" in errors[0], proc.stderr
    assert "failed:" not in proc.stderr  # not one failed row per pair


def test_pairs_that_display_alike_are_an_error_naming_rows(tmp_path):
    write_csv(tmp_path / "task.csv", [])
    from tests.task_factory import draw_image

    draw_image(tmp_path / "images/0.png", "x")
    draw_image(tmp_path / "images/1.png", "y")
    rows = [["images/0.png", "q?", "1", "A B", "C", ""], ["images/1.png", "q?", "2", "A B", "C", ""],
            ["images/0.png", "q?", "3", "A", "B C", ""], ["images/1.png", "q?", "4", "A", "B C", ""]]
    task = load_task(write_csv(tmp_path / "task.csv", rows))
    with pytest.raises(PairSelectionError) as info:
        split_pairs(task.examples, SplitConfig())
    message = str(info.value)
    assert "'A B C'" in message and "row 1 (line 2)" in message and "row 3 (line 4)" in message
