import csv
import json
import math

from optimize.answer_store import AnswerStore
from optimize.results_files import PAIR_PROMPT_CER_COLUMNS, merge_optimal_prompts
from optimize.run_loop import run_pairs
from optimize.run_settings import RunParts, RunSettings
from optimizers.manual import ManualOptimizer
from tasks.cer_metric import CerMetric
from tasks.docqa_csv import load_task
from tasks.pair_splits import SplitConfig, split_pairs
from tests.scripted_answer_model import ScriptedAnswerModel
from tests.task_factory import make_task

CANDIDATES = ["{question} Ответь только значением.", "Опиши документ."]


def _run(tmp_path, data, budget=None, optimizer=None, model=None, advisor_name="none", out="out"):
    task = load_task(data)
    pairs, too_small = split_pairs(task.examples, SplitConfig())
    parts = RunParts(model or ScriptedAnswerModel(), optimizer or ManualOptimizer(CANDIDATES), None,
                     AnswerStore(tmp_path / "s.sqlite"), CerMetric())
    return run_pairs(pairs, too_small, parts, RunSettings(tmp_path / out, "r1", advisor_name=advisor_name,
                                                          max_evaluations_per_pair=budget,
                                                          results_dir=tmp_path / "results", progress=False))


def _rows(path):
    with path.open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_best_val_prompt_is_rescored_on_test_and_written(tmp_path):
    summary = _run(tmp_path, make_task(tmp_path / "data", n_images=10))
    assert summary.results_csv.name == "Scripted-VLM_sep_none.csv"
    with summary.results_csv.open(encoding="utf-8") as fh:
        assert next(csv.reader(fh))[:3] == list(PAIR_PROMPT_CER_COLUMNS)
    rows = _rows(summary.results_csv)
    assert [r["doc type question type"] for r in rows] == ["passport Номер", "passport Фамилия"]
    for r in rows:
        assert r["optimal prompt"] == CANDIDATES[0] and float(r["cer"]) == 0.0
        assert (r["n_train"], r["n_val"], r["n_test"]) == ("4", "3", "3")
        assert r["answer_model_evaluations"] == str(3 * 3 + 3)  # 3 candidates on val + test
    assert summary.mean_test_cer == 0.0

    trials = [json.loads(line) for line in (tmp_path / "out/trials.jsonl").read_text().splitlines()]
    assert len(trials) == 8  # per pair: baseline + 2 candidates on val, winner on test
    assert {t["split"] for t in trials} == {"val", "test"}
    test_trials = [t for t in trials if t["split"] == "test"]
    assert all(t["prompt"] == CANDIDATES[0] for t in test_trials)
    # no optimizer trial ever touched a test row
    test_rows = {p["row"] for t in test_trials for p in t["predictions"]}
    assert not test_rows & {p["row"] for t in trials if t["split"] == "val" for p in t["predictions"]}
    record = json.loads((tmp_path / "out/run.json").read_text())
    assert record["mean_test_cer"] == 0.0 and record["cost"]["model_calls_this_attempt"] == 24


def test_budget_keeps_best_so_far(tmp_path):
    summary = _run(tmp_path, make_task(tmp_path / "data", n_images=10), budget=4)
    for r in summary.rows:
        assert r["optimal prompt"] == "{question}"  # only the baseline fit in the budget
        assert r["status"] == "ok" and r["answer_model_evaluations"] == 3 + 3


def test_rerun_same_run_id_skips_finished_pairs(tmp_path):
    data = make_task(tmp_path / "data", n_images=10)
    first = _run(tmp_path, data)
    model = ScriptedAnswerModel()
    second = _run(tmp_path, data, model=model, out="out2")
    assert model.calls == 0 and second.resumed_pairs == ["passport Номер", "passport Фамилия"]
    assert (tmp_path / "out/Scripted-VLM_sep_none.csv").read_bytes() == (tmp_path / "out2/Scripted-VLM_sep_none.csv").read_bytes()
    assert (tmp_path / "out/trials.jsonl").read_text() == (tmp_path / "out2/trials.jsonl").read_text()
    assert second.mean_test_cer == first.mean_test_cer


def test_too_small_pair_reported_not_scored(tmp_path):
    data = make_task(tmp_path / "data", n_images=4, with_second_pair=False)
    with data.open("a", encoding="utf-8") as fh:
        fh.write("images/0.png,Сумма?,100,invoice,Сумма,\n")
    summary = _run(tmp_path, data)
    rows = {r["doc type question type"]: r for r in _rows(summary.results_csv)}
    assert rows["invoice Сумма"]["cer"] == "" and "skipped: only 1 image" in rows["invoice Сумма"]["status"]
    assert rows["passport Фамилия"]["cer"] == "0.0000"
    assert not math.isnan(summary.mean_test_cer)


def test_optimal_prompts_choose_by_val_and_report_test(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    header = "doc type question type,optimal prompt,cer,val_cer,n_test,optimizer\n"
    (results / "M_sep_A.csv").write_text(header + "p q,prompt A,0.30,0.10,5,critic\nx y,A2,0.5,0.5,5,critic\n")
    (results / "M_sep_B.csv").write_text(header + "p q,prompt B,0.05,0.20,5,critic\nx y,,,,0,critic\n")
    (results / "Other_sep_C.csv").write_text(header + "p q,prompt C,0.0,0.0,5,critic\n")
    out = merge_optimal_prompts(results, "M")
    rows = {r["doc type question type"]: r for r in _rows(out)}
    assert out.name == "M_sep_OptimalPrompts.csv"
    assert rows["p q"]["optimal prompt"] == "prompt A" and rows["p q"]["advisor"] == "A" and rows["p q"]["cer"] == "0.30"
    assert rows["x y"]["advisor"] == "A"
    assert merge_optimal_prompts(tmp_path / "empty_dir_that_is_missing", "M") is None
