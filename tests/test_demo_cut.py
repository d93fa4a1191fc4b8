"""More demos for the same cost: a demo cut (``Prompt.demo_chars``) is a property of the prompt,
searched per pair by retrieval, keyed only when set, carried whole through prompt books, and
refused for a model that reads pixels."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
from pathlib import Path

import pytest

from optimize.answer_store import AnswerStore
from optimize.evaluator import Budget, Evaluator, answer_cache_key
from optimizers.retrieval import RetrievalOptimizer
from prompt_opt_api import Example, Prompt
from prompt_opt_api.demo_retrieval import OCR_TFIDF, DemoRetrieval
from prompt_opt_api.prompt_book import BookDemo, BookEntry, BookRetrieval, PromptBook, PromptBookError, load_book
from tasks.cer_metric import CerMetric
from tasks.docqa_csv import load_task
from tasks.pair_splits import SplitConfig, split_pairs
from tests.book_helpers import applied_test_cers, apply_book, cers_without, write_book
from tests.cli_helpers import run_cli
from tests.scripted_answer_model import ScriptedAnswerModel, ScriptedCutReader, ScriptedReader
from tests.task_factory import draw_image, write_csv

ISSUERS = ("ALPHA", "BETA", "GAMMA")


def long_page_task(root: Path, n: int = 14) -> Path:
    """Receipts whose page text (the scripted reader's OCR) is about 600 characters with the issuer
    in the middle: two whole demo pages fit the scripted reader's 1500-character context, three do
    not; four cut to 200 characters around their answers do."""
    rows = []
    for i in range(n):
        issuer = ISSUERS[i % 3]
        draw_image(root / f"images/{i}.png", f"{i}")
        filler = " ".join(f"item{i:02d}-{j:02d} 1.00" for j in range(19))
        (root / f"images/{i}.txt").write_text(f"{filler}\nSHOP {issuer} TRADING\n{filler}", encoding="utf-8")
        rows.append([f"images/{i}.png", "Who issued it?", issuer, "receipt", "company", ""])
    return write_csv(root / "task.csv", rows)


def _visible(tmp_path):
    (pair,), _ = split_pairs(load_task(long_page_task(tmp_path / "data")).examples, SplitConfig())
    page = len(ScriptedReader().page_text(pair.train[0]))
    assert 2 * page <= 1500 < 3 * page and len(pair.train) >= 4  # the premise: only cut demos fit four
    return dataclasses.replace(pair, test=())


def _search(tmp_path, model, **options):
    visible = _visible(tmp_path)
    evaluator = Evaluator(model, AnswerStore(tmp_path / "s.sqlite"), CerMetric(), visible, Budget(None))
    trials = RetrievalOptimizer(**{"ks": (2, 1, 3), "cut_ks": (4,), "cut_chars": 200, **options}).optimize(
        visible, evaluator, None)
    return min(trials, key=lambda t: t.score.cer), trials  # the earliest on a tie, as the engine picks


def test_four_demos_cut_win_on_val_where_only_cut_demos_fit_the_context(tmp_path):
    best, trials = _search(tmp_path, ScriptedCutReader(context_chars=1500, needs_demos=4))
    assert best.split == "val" and best.score.cer == 0.0  # scored to the end of val under the early stop
    assert (best.prompt.retrieval.k, best.prompt.demo_chars) == (4, 200)
    assert all(t.score.cer > 0 for t in trials if t.prompt.demo_chars is None)  # whole pages: two fit, not four


def test_where_cut_demos_lose_the_whole_demos_are_kept(tmp_path):
    model = ScriptedCutReader(context_chars=1500, needs_demos=2, cut_hurts=True)
    best, _ = _search(tmp_path, model)
    assert 200 in model.cuts_seen  # the cut rule was tried...
    assert best.score.cer == 0.0 and best.prompt.demo_chars is None and best.prompt.retrieval.k == 2  # ...and lost


def test_a_model_that_reads_pixels_gets_no_cut_rule_and_a_cut_prompt_is_refused(tmp_path):
    visible = _visible(tmp_path)
    for model in (ScriptedAnswerModel(echo_first_demo=True), ScriptedReader(echo_first_demo=True)):
        evaluator = Evaluator(model, AnswerStore(tmp_path / f"{model.name}.sqlite"), CerMetric(), visible, Budget(None))
        assert evaluator.cuts_demo_text is False
        cut = Prompt("{question}", retrieval=DemoRetrieval(4, visible.train), demo_chars=200)
        with pytest.raises(ValueError, match="does not cut demo pages"):
            evaluator.score(cut, visible.val)
        assert model.calls == 0  # refused before anything was answered
        trials = RetrievalOptimizer(ks=(2,), cut_ks=(4,), stop_when_beaten=False).optimize(visible, evaluator, None)
        assert any(t.prompt.retrieval for t in trials) and not any(t.prompt.demo_chars for t in trials)


@pytest.mark.parametrize("value", [39, 0, -5, "200", 200.0, True])
def test_a_bad_cut_is_refused_before_anything_is_charged(tmp_path, value):
    visible = _visible(tmp_path)
    model = ScriptedCutReader()
    evaluator = Evaluator(model, AnswerStore(tmp_path / "s.sqlite"), CerMetric(), visible, Budget(None))
    with pytest.raises(ValueError, match="demo_chars must be"):
        evaluator.score(Prompt("{question}", demos=visible.train[:1], demo_chars=value), visible.val)
    assert model.calls == 0 and evaluator.budget.used == 0
    evaluator.score(Prompt("{question}", demos=visible.train[:1], demo_chars=40), visible.val)  # the least is fine


# -- cache keys and books without a cut are what they were ---------------------------------------
def _example(i, answer):
    return Example(image=Path(f"images/{i}.png"), question="Who issued it?", answer=answer, doc_class="receipt",
                   question_type="company", bbox=None, image_sha256=f"{i:02d}" * 32, source_row=f"row {i}")


DEMOS = (_example(1, "ALPHA"), _example(2, "BETA"))
MODEL = {"model": "m", "revision": "r", "generation": {}}
# answer keys of prompts without a cut, as the code before Prompt.demo_chars made them
KEYS_BEFORE = {
    "text": ("b17ff43ff3a224876935c26b792ad03af7cc558f8aa60465ee5e704d4bca79be", Prompt("{question} Only the value.")),
    "demos": ("886a7e415104ae58b5e7484ba3cf0b7cfcf174d9bd943d330ffc5baead81126a", Prompt("{question}", demos=DEMOS)),
    "retrieval": ("93681479d03b4947851ebe9c90d389945826502aebbd2260107588bffc72fa7c",
                  Prompt("{question}", retrieval=DemoRetrieval(2, DEMOS, "ocr-char3-tfidf/v1", True))),
}


def _book(cut=None):
    demo = BookDemo("images/1.png", "01" * 32, "Who issued it?", "ALPHA")
    return PromptBook(task_id="t", task_csv="/d/task.csv",
                      answer_model={"name": "m", "identity": {}, "config": {"_target_": "x"}},
                      split={"seed": 0}, metric={"_target_": "tasks.cer_metric.CerMetric"},
                      entries=(BookEntry("receipt", "company", "{question}", demos=(demo,), val_cer=0.1, test_cer=0.2),
                               BookEntry("receipt", "total", "{question}",
                                         retrieval=BookRetrieval(2, "page-gray16/v1", (demo,)), demo_chars=cut)))


def test_keys_and_books_without_a_cut_are_byte_identical_to_those_before_it():
    for name, (before, prompt) in KEYS_BEFORE.items():
        key = answer_cache_key(MODEL, prompt, _example(3, "GAMMA"))
        assert key == before, name
        cut = answer_cache_key(MODEL, dataclasses.replace(prompt, demo_chars=200), _example(3, "GAMMA"))
        assert cut != before  # a cut is another request
    # a book written before the field, byte for byte (sha256 of the file's text), version 4
    assert hashlib.sha256(_book().dumps().encode()).hexdigest() == (
        "2e7359fbdfd895d8a577b10d7862209562e83f4231eb460a040a4223cd1487a0")
    assert _book().to_json()["schema_version"] == 4 and "demo_chars" not in _book().dumps()
    # a cut is written as version 5, which a reader of 4 refuses instead of dropping the cut
    cut = _book(200).to_json()
    assert cut["schema_version"] == 5 and cut["pairs"][1]["demo_chars"] == 200


@pytest.mark.parametrize("value, says", [
    (39, "must be at least 40 characters or null, got 39"),
    ("200", "must be a whole number of characters (at least 40) or null, not '200'"),
    (True, "must be a whole number of characters (at least 40) or null, not True"),
])
def test_a_book_with_a_bad_cut_is_refused_naming_the_entry_and_key(tmp_path, value, says):
    data = _book(200).to_json()
    data["pairs"][1]["demo_chars"] = value
    path = write_book(tmp_path / "bad.book.json", data)
    with pytest.raises(PromptBookError) as err:
        load_book(path)
    assert str(err.value) == f"{path}, entry 2 ('receipt total'): \"demo_chars\" {says}"


def test_a_version_4_book_holding_a_cut_is_refused(tmp_path):
    data = _book(200).to_json()
    data["schema_version"] = 4
    with pytest.raises(PromptBookError, match=r'entry 2: "demo_chars" needs schema_version 5 \(the book says 4\)'):
        load_book(write_book(tmp_path / "old.book.json", data))
    assert load_book(write_book(tmp_path / "new.book.json", _book(200).to_json())).entries[1].demo_chars == 200


# -- a cut winner through the CLI, its book and apply ---------------------------------------------
def test_a_cut_winner_round_trips_through_the_book_with_exact_parity_and_a_bad_cut_exits_2(tmp_path):
    data = long_page_task(tmp_path / "data")
    proc = run_cli(tmp_path, data, "optimizer=retrieval", "optimizer.manual_candidates=[]", "optimizer.ks=[2]",
                   "optimizer.cut_ks=[4]", "optimizer.cut_chars=200", model="scripted_cut")
    assert proc.returncode == 0, proc.stderr[-3000:]
    book_path = tmp_path / "out" / "Scripted-Cut-Reader_sep_none.book.json"
    book = load_book(book_path)
    (entry,) = book.entries
    assert book.schema_version == 5 and (entry.retrieval.k, entry.demo_chars, entry.test_cer) == (4, 200, 0.0)
    with (tmp_path / "out" / "Scripted-Cut-Reader_sep_none.csv").open(encoding="utf-8") as fh:
        (row,) = csv.DictReader(fh)
    assert row["demos"].endswith("each page cut to 200 characters around its answer)")

    assert applied_test_cers(book_path, data, tmp_path / "applied.csv") == [0.0]

    # the cut is what made it: the same book without it scores worse
    assert cers_without(book_path, "demo_chars", data, tmp_path)[0] > 0

    bad = json.loads(book_path.read_text(encoding="utf-8"))
    bad["pairs"][0]["demo_chars"] = 12
    refused = apply_book(write_book(tmp_path / "bad.book.json", bad), data, "--split", "test", "--out", tmp_path / "b.csv")
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [
        f"{tmp_path / 'bad.book.json'}, entry 1 ('receipt company'): \"demo_chars\" must be at least 40 characters "
        "or null, got 12"]


def test_a_bad_cut_in_the_config_exits_2_in_one_line(tmp_path):
    data = long_page_task(tmp_path / "data")
    proc = run_cli(tmp_path, data, "optimizer=retrieval", "optimizer.cut_chars=12", model="scripted_cut")
    assert proc.returncode == 2
    (line,) = [ln for ln in proc.stderr.splitlines() if "cut_chars" in ln]
    assert line.endswith("bad configuration: optimizer (optimizers.retrieval.RetrievalOptimizer): ValueError: "
                         "retrieval: cut_chars must be a whole number of characters, at least 40, got 12")
    assert "Traceback" not in proc.stderr


def test_a_cut_rule_at_a_k_tried_whole_is_a_candidate_of_its_own(tmp_path):
    visible = _visible(tmp_path)
    evaluator = Evaluator(ScriptedCutReader(), AnswerStore(tmp_path / "s.sqlite"), CerMetric(), visible, Budget(None))
    trials = RetrievalOptimizer(ks=(2,), cut_ks=(2,), signatures=(OCR_TFIDF,), distinct_answers=False, copy_guard=False,
                                stop_when_beaten=False).optimize(visible, evaluator, None)
    assert [(t.prompt.retrieval.k, t.prompt.demo_chars) for t in trials if t.prompt.retrieval] == [(2, None), (2, 200)]


def test_a_chain_step_with_a_budget_share_sees_that_the_model_cuts(tmp_path):
    from optimizers.chain import ChainOptimizer

    visible = _visible(tmp_path)
    evaluator = Evaluator(ScriptedCutReader(), AnswerStore(tmp_path / "s.sqlite"), CerMetric(), visible, Budget(200))
    chain = ChainOptimizer({"s1_demos": RetrievalOptimizer(ks=(2,), cut_ks=(4,), signatures=(OCR_TFIDF,)),
                            "s2_more": RetrievalOptimizer(ks=(1,))}, budget_shares=[0.6])
    trials = chain.optimize(visible, evaluator, None)
    assert any(t.prompt.demo_chars == 200 and t.score.cer == 0.0 for t in trials if t.optimizer == "retrieval")


@pytest.mark.parametrize("extra", [("plan=true",), ()])
def test_a_bad_model_wide_cut_exits_2_in_one_line_also_for_the_plan(tmp_path, extra):
    data = long_page_task(tmp_path / "data")
    proc = run_cli(tmp_path, data, "model.demo_chars=12", *extra, model="ocr_llm")  # built, never loaded
    assert proc.returncode == 2, proc.stderr[-2000:]
    (line,) = [ln for ln in proc.stderr.splitlines() if "demo_chars" in ln]
    assert line.endswith("bad configuration: model (models.ocr_llm.OcrLlmAnswerModel): ValueError: ocr_llm: "
                         "demo_chars must be at least 40 characters or null, got 12")
    assert "Traceback" not in proc.stderr


# -- a cut book needs a model that cuts; the book's schema version; the retrieval settings ---------
@pytest.fixture(scope="module")
def cut_run(tmp_path_factory):
    """A run whose winner cuts its demos: (the task CSV, its book)."""
    root = tmp_path_factory.mktemp("cut_run")
    data = long_page_task(root / "data")
    proc = run_cli(root, data, "optimizer=retrieval", "optimizer.manual_candidates=[]", "optimizer.ks=[2]",
                   "optimizer.cut_ks=[4]", "optimizer.cut_chars=200", model="scripted_cut")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return data, root / "out" / "Scripted-Cut-Reader_sep_none.book.json"


def _for_pixels(cut_run, path):
    """The cut run's book with its answer model swapped for one that reads pixels."""
    book = json.loads(cut_run[1].read_text(encoding="utf-8"))
    assert book["pairs"][0]["demo_chars"] == 200
    book["answer_model"]["config"] = {"_target_": "tests.scripted_answer_model.ScriptedAnswerModel"}
    return write_book(path, book)


PIXELS_REFUSED = ("{book}, pair 'receipt company': \"demo_chars\": 200 cuts each demo page around its answer, but the "
                  "answer model 'tests.scripted_answer_model.ScriptedAnswerModel' does not cut demo pages (it reads "
                  "pixels): refused, its requests would not be the ones the book was scored with")


def test_a_cut_book_applied_with_a_model_that_reads_pixels_exits_2_in_one_line_before_scoring(cut_run, tmp_path):
    pixels = _for_pixels(cut_run, tmp_path / "pixels.book.json")
    out = tmp_path / "p.csv"
    proc = apply_book(pixels, cut_run[0], "--out", out)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [PIXELS_REFUSED.format(book=pixels)]
    assert not out.exists()  # no pair scored


def test_the_cut_book_still_applies_with_the_model_that_cuts(cut_run, tmp_path):
    proc = apply_book(cut_run[1], cut_run[0], "--out", tmp_path / "ok.csv")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert [p["cer"] for p in json.loads((tmp_path / "ok.json").read_text(encoding="utf-8"))["pairs"]] == [0.0]


def test_the_runtime_refuses_a_cut_book_for_a_model_that_reads_pixels_and_builds_the_one_that_cuts(cut_run, tmp_path):
    from models.prompt_runtime import PromptRuntime

    pixels = _for_pixels(cut_run, tmp_path / "pixels.book.json")
    with pytest.raises(PromptBookError) as err:
        PromptRuntime(pixels, allow=("tests.",)).model("receipt", "company")
    assert str(err.value) == PIXELS_REFUSED.format(book=pixels)
    assert PromptRuntime(cut_run[1], allow=("tests.",)).model("receipt", "company").cuts_demo_text is True


def test_a_book_built_in_memory_reports_the_version_a_writer_writes():
    assert (_book().schema_version, _book(200).schema_version) == (4, 5)
    assert _book(200).schema_version == _book(200).to_json()["schema_version"]


def test_a_merged_book_with_a_cut_entry_reports_version_5(tmp_path):
    import pandas as pd

    from optimize.run_books import merged_book

    whole, cut = tmp_path / "whole.book.json", tmp_path / "cut.book.json"
    whole.write_text(_book().dumps(), encoding="utf-8")
    cut.write_text(_book(200).dumps(), encoding="utf-8")
    assert (load_book(whole).schema_version, load_book(cut).schema_version) == (4, 5)
    best = pd.DataFrame({"doc type question type": ["receipt company", "receipt total"], "book": [whole, cut]})
    merged = merged_book(best, lambda row: row["book"])  # the header is the uncut book's
    assert merged.entries[1].demo_chars == 200
    assert merged.schema_version == 5 == merged.to_json()["schema_version"]


@pytest.mark.parametrize("value, shown", [(None, "None"), (4, "4"), ("4", "'4'")])
def test_cut_ks_that_is_not_a_list_is_refused_with_its_message(value, shown):
    with pytest.raises(ValueError) as err:
        RetrievalOptimizer(cut_ks=value)
    assert str(err.value) == f"retrieval: cut_ks must be demos counts >= 1, got {shown}"


def test_cut_ks_as_hydra_gives_it_still_works():
    from omegaconf import OmegaConf

    listed = OmegaConf.create({"cut_ks": [2, 4], "ks": [2]})
    assert RetrievalOptimizer(ks=listed.ks, cut_ks=listed.cut_ks).cut_ks == (2, 4)
    assert RetrievalOptimizer(cut_ks=[]).cut_ks == ()


def test_the_distinct_answers_rule_and_the_next_instructions_keep_the_best_rules_cut(tmp_path):
    best, trials = _search(tmp_path, ScriptedCutReader(context_chars=1500, needs_demos=4),
                           stop_when_beaten=False, instructions=2, manual_candidates=["{question} Only the value."])
    assert best.prompt.demo_chars == 200 and best.prompt.text == "{question}"
    distinct = [t for t in trials if t.prompt.retrieval and t.prompt.retrieval.distinct_answers]
    second = [t for t in trials if t.prompt.retrieval and t.prompt.text == "{question} Only the value."]
    assert distinct and second
    assert all(t.prompt.demo_chars == 200 for t in distinct + second)


def test_a_whole_best_rule_keeps_whole_pages_in_the_distinct_answers_rule(tmp_path):
    best, trials = _search(tmp_path, ScriptedCutReader(context_chars=1500, needs_demos=2, cut_hurts=True),
                           stop_when_beaten=False)
    distinct = [t for t in trials if t.prompt.retrieval and t.prompt.retrieval.distinct_answers]
    assert best.prompt.demo_chars is None and distinct and all(t.prompt.demo_chars is None for t in distinct)


def test_the_report_names_each_candidates_cut_so_cut_and_whole_rules_at_the_same_k_differ(tmp_path):
    import re

    from optimize.run_books import book_file_name
    from tests.engine_harness import run_engine

    optimizer = RetrievalOptimizer(ks=(2,), cut_ks=(2, 4), signatures=(OCR_TFIDF,), stop_when_beaten=False,
                                   manual_candidates=[])
    run = run_engine(tmp_path, optimizer, model=ScriptedCutReader(context_chars=1500, needs_demos=4),
                     data=long_page_task(tmp_path / "data"), report=True)
    (digest,) = run.run_json["pairs"].values()
    assert {(t["n_demos"], t.get("demo_chars"), t.get("distinct_answers", False)) for t in digest["top"]} == {
        (0, None, False), (2, None, False), (2, 200, False), (4, 200, False), (4, 200, True)}
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", (run.out_dir / "report.html").read_text(encoding="utf-8")))
    (entry,) = load_book(run.summary.results_csv.parent / book_file_name(run.summary.results_csv.name)).entries
    assert entry.demo_chars == 200 and f"Demos chosen {entry.demos_text()}." in text  # the book's own phrase
    cut = "each page cut to 200 characters around its answer"
    board = text[text.index("Leaderboard per pair"):text.index("Worst remaining errors")]
    for demos in ("0", "2", f"2 ({cut})", f"4 ({cut})", f"4 (distinct answers, {cut})"):
        assert board.count(f" dataset {demos} r-out ") == 1, demos
