import csv
import math

from optimize.results_files import PAIR_PROMPT_CER_COLUMNS, merge_optimal_prompts
from optimizers.manual import ManualOptimizer
from tests.engine_harness import run_engine
from tests.scripted_answer_model import ScriptedAnswerModel
from tests.task_factory import make_task

CANDIDATES = ["{question} Ответь только значением.", "Опиши документ."]


def _run(tmp_path, **kwargs):
    """The hand-written CANDIDATES over the task's pairs, the run kept in the results folder."""
    return run_engine(tmp_path, ManualOptimizer(CANDIDATES), results=True, **kwargs)


def _rows(path):
    with path.open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_best_val_prompt_is_rescored_on_test_and_written(tmp_path):
    run = _run(tmp_path, two_pairs=True)
    summary = run.summary
    assert summary.results_csv.name == "Scripted-VLM_sep_none.csv"
    with summary.results_csv.open(encoding="utf-8") as fh:
        assert next(csv.reader(fh))[:3] == list(PAIR_PROMPT_CER_COLUMNS)
    rows = run.csv_rows
    assert [r["doc type question type"] for r in rows] == ["passport Номер", "passport Фамилия"]
    for r in rows:
        assert r["optimal prompt"] == CANDIDATES[0] and float(r["cer"]) == 0.0
        assert (r["n_train"], r["n_val"], r["n_test"]) == ("4", "3", "3")
        assert r["answer_model_evaluations"] == str(3 * 3 + 3)  # 3 candidates on val + test
    assert summary.mean_test_cer == 0.0

    trials = run.trials
    assert len(trials) == 8  # per pair: baseline + 2 candidates on val, winner on test
    assert {t["split"] for t in trials} == {"val", "test"}
    test_trials = [t for t in trials if t["split"] == "test"]
    assert all(t["prompt"] == CANDIDATES[0] for t in test_trials)
    # no optimizer trial ever touched a test row
    test_rows = {p["row"] for t in test_trials for p in t["predictions"]}
    assert not test_rows & {p["row"] for t in trials if t["split"] == "val" for p in t["predictions"]}
    record = run.run_json
    assert record["mean_test_cer"] == 0.0 and record["cost"]["model_calls_this_attempt"] == 24


def test_budget_keeps_best_so_far(tmp_path):
    summary = _run(tmp_path, two_pairs=True, budget=4).summary
    for r in summary.rows:
        assert r["optimal prompt"] == "{question}"  # only the baseline fit in the budget
        assert r["status"] == "ok" and r["answer_model_evaluations"] == 3 + 3


def test_rerun_same_run_id_skips_finished_pairs(tmp_path):
    first = _run(tmp_path, two_pairs=True, run_id="r1").summary
    model = ScriptedAnswerModel()
    second = _run(tmp_path, two_pairs=True, run_id="r1", model=model, out="out2").summary
    assert model.calls == 0 and second.resumed_pairs == ["passport Номер", "passport Фамилия"]
    assert (tmp_path / "out/Scripted-VLM_sep_none.csv").read_bytes() == (tmp_path / "out2/Scripted-VLM_sep_none.csv").read_bytes()
    assert (tmp_path / "out/trials.jsonl").read_text() == (tmp_path / "out2/trials.jsonl").read_text()
    assert second.mean_test_cer == first.mean_test_cer


def test_too_small_pair_reported_not_scored(tmp_path):
    data = make_task(tmp_path / "data", n_images=4, with_second_pair=False)
    with data.open("a", encoding="utf-8") as fh:
        fh.write("images/0.png,Сумма?,100,invoice,Сумма,\n")
    run = _run(tmp_path, data=data)
    rows = {r["doc type question type"]: r for r in run.csv_rows}
    assert rows["invoice Сумма"]["cer"] == "" and "skipped: only 1 image" in rows["invoice Сумма"]["status"]
    assert rows["passport Фамилия"]["cer"] == "0.0000"
    assert not math.isnan(run.summary.mean_test_cer)


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
