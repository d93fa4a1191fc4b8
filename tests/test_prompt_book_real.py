"""Parity with the real CPU model: a few-shot run's book, applied from an empty store in a new
process, reproduces the reported test CER exactly, few-shot winners included."""

import csv
import pytest
import json
import subprocess
import sys

from models.prompt_runtime import PromptRuntime
from prompt_opt_api.prompt_book import load_book
from tasks.docqa_csv import load_task
from tests.cli_helpers import REPO, cli_env, run_cli
from scripts.default_models import models_dir

pytestmark = pytest.mark.real  # real weights, Tesseract or a real server: the real lane

DEMO = REPO / "tasks/demo/task.csv"
# Pairs on which two demos beat every instruction alone on val (seed 0), so the book's
# winners carry demos; the test checks that they do.
PAIRS = '["Счёт Сумма","СТС Регистрационный знак"]'


def test_a_real_fewshot_book_reproduces_the_reported_test_cer_from_an_empty_store(tmp_path):
    proc = run_cli(tmp_path, DEMO, "optimizer=fewshot", "optimizer.random_sets=2", "optimizer.swap_candidates=0",
                   f"pairs={PAIRS}", f"paths.models={models_dir()}", model="ocr_llm", timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    book = load_book(tmp_path / "out" / "Qwen2.5-0.5B-OCR_sep_none.book.json")
    assert len(book.entries) == 2 and any(e.demos for e in book.entries), book.entries

    out = tmp_path / "applied.csv"
    applied = subprocess.run(  # another process, an empty store: every OCR text and answer computed again
        [sys.executable, "-m", "optimize.apply", str(book.path), str(DEMO), "--split", "test", "--out", str(out)],
        cwd=REPO, env=cli_env(), capture_output=True, text=True, timeout=900)
    assert applied.returncode == 0, applied.stderr[-3000:]
    assert "is not the one the book was scored with" not in applied.stderr
    figures = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    assert {p["pair"]: p["cer"] for p in figures["pairs"]} == {e.key: e.test_cer for e in book.entries}

    # answer for answer: the run's test predictions (trials.jsonl) are what apply got
    trials = [json.loads(line) for line in (tmp_path / "out" / "trials.jsonl").read_text().splitlines()]
    reported = {(t["pair"], p["row"].split(", ", 1)[-1]): p["prediction"]
                for t in trials if t["split"] == "test" for p in t["predictions"]}
    with out.open(encoding="utf-8") as fh:
        got = {(r["pair"], r["row"].split(", ", 1)[-1]): r["prediction"] for r in csv.DictReader(fh)}
    assert got == reported

    # outside the framework: the runtime's text request is the one the model sends, fitted to the
    # context with the model's tokenizer (a small n_ctx, the user's setting, makes the fitting cut)
    runtime = PromptRuntime(book.path, model_settings={"n_ctx": 384, "store_dir": str(models_dir())})
    entry = next(e for e in book.entries if e.demos)
    example = next(ex for ex in load_task(DEMO).examples if ex.pair_identity == (entry.doc_class, entry.question_type))
    built = runtime.messages(entry.doc_class, entry.question_type, example.image, example.question)
    model = runtime.model(entry.doc_class, entry.question_type)
    assert sum(model.diagnostics().values()) >= 1, model.diagnostics()  # the fitting did cut
    llm = model._load()  # what answer() sends: the same builder, counted with the loaded model's tokenizer
    try:
        sent = model.build_messages(runtime.prompt(entry.doc_class, entry.question_type), example,
                                    model._token_count(llm))
    finally:
        model.close()
    assert built == sent
