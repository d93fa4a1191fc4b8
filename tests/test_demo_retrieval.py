"""Per-document demos (optimizer=retrieval): the pool is train only, and a retrieval winner
leaves the framework whole (the book holds the rule and its pool; apply and the runtime retrieve alike)."""

import csv
import dataclasses
import json
import subprocess
import sys

import pytest

from models.prompt_runtime import PromptRuntime
from optimize.answer_store import AnswerStore
from optimize.evaluator import Budget, Evaluator
from prompt_opt_api import HeldOutAccessError, Prompt
from prompt_opt_api.demo_retrieval import OCR_TFIDF, PAGE_GRAY16, DemoRetrieval, PageSignatures, page_signature
from prompt_opt_api.prompt_book import load_book
from tasks.cer_metric import CerMetric
from tasks.docqa_csv import load_task
from tasks.pair_splits import SplitConfig, split_pairs
from tests.cli_helpers import REPO, cli_env, run_cli
from optimizers.retrieval import RetrievalOptimizer
from tests.scripted_answer_model import ScriptedAnswerModel, ScriptedReader
from tests.task_factory import draw_image, issuer_task, make_task, write_csv


class _Recording(ScriptedAnswerModel):
    """Keeps every request as the model got it."""

    def answer(self, batch):
        self.answered = [*getattr(self, "answered", []), *batch]
        return super().answer(batch)


def _pair(tmp_path, n_images=10):
    pairs, _ = split_pairs(load_task(make_task(tmp_path / "data", n_images=n_images)).examples, SplitConfig())
    return pairs[0]


def test_the_nearest_pages_are_chosen_and_a_page_is_never_its_own_demo(tmp_path):
    pair = _pair(tmp_path)
    train = pair.train
    signature_of = PageSignatures()
    rule = DemoRetrieval(k=2, pool=train)
    query = pair.val[0]
    chosen = rule.select(query, signature_of)
    target = page_signature(query.image)
    similarity = {ex: sum(a * b for a, b in zip(target, page_signature(ex.image))) for ex in train}
    assert len(chosen) == 2 and list(chosen) == sorted(train, key=lambda ex: -similarity[ex])[:2]
    assert train[0] not in rule.select(train[0], signature_of)  # its own page is left out


def test_a_retrieval_pool_holds_train_examples_only(tmp_path):
    pair = _pair(tmp_path)
    visible = dataclasses.replace(pair, test=())
    model = _Recording(echo_first_demo=True)
    evaluator = Evaluator(model, AnswerStore(tmp_path / "s.sqlite"), CerMetric(), visible, Budget(None))
    for intruder in (pair.val[0], pair.test[0]):
        leaky = Prompt("{question}", retrieval=DemoRetrieval(k=1, pool=(*pair.train, intruder)))
        with pytest.raises(HeldOutAccessError, match="retrieval pool example"):
            evaluator.score(leaky, pair.val)
    assert model.calls == 0
    evaluator.score(Prompt("{question}", retrieval=DemoRetrieval(k=2, pool=pair.train)), pair.val)
    assert {d for p, _ in model.answered for d in p.demos} <= set(pair.train)
    assert all(len(p.demos) == 2 and p.retrieval is None for p, _ in model.answered)  # resolved before the model


def _apply(*args):
    return subprocess.run([sys.executable, "-m", "optimize.apply", *map(str, args), "--allow", "tests."], cwd=REPO,
                          env=cli_env(), capture_output=True, text=True, timeout=300)


def test_a_retrieval_winner_round_trips_through_the_book_with_exact_parity(tmp_path):
    # Two issuers with their own layout and value: the nearest train page is one of the same issuer.
    rows = []
    for i in range(12):
        wide = i % 2 == 1
        draw_image(tmp_path / "data" / f"images/{i}.png", f"doc {i}", size=(160, 60) if wide else (120, 160))
        rows.append([f"images/{i}.png", "Кто выдал?", "МВД" if wide else "ФМС России", "passport", "Кем выдан", ""])
    data = write_csv(tmp_path / "data" / "task.csv", rows)
    # the scripted model answers with the first demo's answer: which page was retrieved shows in the CER
    proc = run_cli(tmp_path, data, "optimizer=retrieval", "optimizer.manual_candidates=[]", "model.echo_first_demo=true",
                   "optimizer.ks=[1,2]")
    assert proc.returncode == 0, proc.stderr[-3000:]
    book_path = tmp_path / "out" / "Scripted-VLM_sep_none.book.json"
    book = load_book(book_path)
    assert book.entries and all(e.retrieval is not None and not e.demos for e in book.entries)
    with (tmp_path / "out" / "Scripted-VLM_sep_none.csv").open(encoding="utf-8") as fh:
        rows = {r["doc type question type"]: r for r in csv.DictReader(fh)}
    for entry in book.entries:
        assert len(entry.retrieval.pool) == int(rows[entry.key]["n_train"])
        assert rows[entry.key]["demos"].startswith(f"per document: the {entry.retrieval.k} most similar of")

    out = tmp_path / "applied.csv"
    applied = _apply(book_path, data, "--split", "test", "--out", out)
    assert applied.returncode == 0, applied.stderr[-3000:]
    figures = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    assert {p["pair"]: p["cer"] for p in figures["pairs"]} == {e.key: e.test_cer for e in book.entries}

    # the runtime retrieves the same demos: its first demo's answer is what the model answered
    runtime = PromptRuntime(book_path)
    test_rows = {(e.doc_class, e.question_type, e.source_row.split(", ", 1)[-1]): e for e in load_task(data).examples}
    with out.open(encoding="utf-8") as fh:
        predictions = list(csv.DictReader(fh))
    assert predictions
    for row in predictions:
        doc_class, question_type = next((e.doc_class, e.question_type) for e in book.entries if e.key == row["pair"])
        example = test_rows[(doc_class, question_type, row["row"].split(", ", 1)[-1])]
        assert runtime.prompt_for(example).demos[0].answer == row["prediction"]


def test_ocr_text_retrieval_finds_the_same_issuer_and_can_require_distinct_answers(tmp_path):
    pairs, _ = split_pairs(load_task(issuer_task(tmp_path, n=14)).examples, SplitConfig())
    pair = pairs[0]
    assert min(sum(e.answer == a for e in pair.train) for a in ("ALPHA", "MARKET")) >= 2  # k=2 of one issuer exist
    signatures = PageSignatures(ScriptedReader().page_text)
    for query in pair.val:
        nearest = DemoRetrieval(k=2, pool=pair.train, signature=OCR_TFIDF).select(query, signatures)
        assert [d.answer for d in nearest] == [query.answer] * 2
        distinct = DemoRetrieval(k=2, pool=pair.train, signature=OCR_TFIDF, distinct_answers=True).select(query, signatures)
        assert distinct[0].answer == query.answer and distinct[1].answer != query.answer


def test_a_model_that_reads_pixels_only_refuses_an_ocr_rule_and_the_optimizer_does_not_try_one(tmp_path):
    pairs, _ = split_pairs(load_task(issuer_task(tmp_path)).examples, SplitConfig())
    visible = dataclasses.replace(pairs[0], test=())
    model = ScriptedAnswerModel(echo_first_demo=True)
    evaluator = Evaluator(model, AnswerStore(tmp_path / "s.sqlite"), CerMetric(), visible, Budget(None))
    assert evaluator.retrieval_signatures == (PAGE_GRAY16,)
    with pytest.raises(ValueError, match="reads pixels only"):
        evaluator.score(Prompt("{question}", retrieval=DemoRetrieval(1, visible.train, OCR_TFIDF)), visible.val)
    assert model.calls == 0
    trials = RetrievalOptimizer(ks=(2, 1), stop_when_beaten=False).optimize(visible, evaluator, None)
    assert {t.prompt.retrieval.signature for t in trials if t.prompt.retrieval} == {PAGE_GRAY16}


def test_the_retrieval_search_spends_what_it_plans_and_keeps_the_best_rule(tmp_path):
    pairs, _ = split_pairs(load_task(issuer_task(tmp_path)).examples, SplitConfig())
    visible = dataclasses.replace(pairs[0], test=())
    optimizer = RetrievalOptimizer(ks=(2, 1, 3), instructions=2, manual_candidates=["{question} Только значением."],
                                   stop_when_beaten=False)
    evaluator = Evaluator(ScriptedReader(echo_first_demo=True), AnswerStore(tmp_path / "s.sqlite"), CerMetric(),
                          visible, Budget(None))
    trials = optimizer.optimize(visible, evaluator, None)
    # at most what it plans: two rules that retrieve the same demos for a page share its answer
    assert 0 < evaluator.budget.used <= optimizer.planned_evaluations(visible, None)
    assert len(trials) * len(visible.val) == optimizer.planned_evaluations(visible, None)
    rules = [t.prompt.retrieval for t in trials if t.prompt.retrieval]
    # both similarities at k=2, then k=1 and k=3 with the better one (OCR text: the issuer's
    # own answer comes first), distinct answers at the best k, the second instruction last
    assert [(r.k, r.signature, r.distinct_answers) for r in rules][:2] == [(2, OCR_TFIDF, False), (2, PAGE_GRAY16, False)]
    assert all(r.signature == OCR_TFIDF for r in rules[2:]) and len(rules) == 2 + 2 + 1 + 1
    ocr = [t for t in trials if t.prompt.retrieval and t.prompt.retrieval.signature == OCR_TFIDF]
    assert min(t.score.cer for t in ocr) == 0.0


def test_a_rule_that_can_no_longer_win_stops_early_and_the_winner_is_the_same(tmp_path):
    pairs, _ = split_pairs(load_task(issuer_task(tmp_path)).examples, SplitConfig())
    visible = dataclasses.replace(pairs[0], test=())

    def search(stop_when_beaten, store):
        optimizer = RetrievalOptimizer(ks=(2, 1, 3), instructions=2, manual_candidates=["{question} Только значением."],
                                       stop_when_beaten=stop_when_beaten)
        evaluator = Evaluator(ScriptedReader(echo_first_demo=True), AnswerStore(tmp_path / store), CerMetric(),
                              visible, Budget(None))
        trials = optimizer.optimize(visible, evaluator, None)
        best = min(trials, key=lambda t: t.score.cer)  # the earliest on a tie, as the engine picks
        return best, trials, evaluator.budget.used

    full_best, full_trials, full_used = search(False, "full.sqlite")
    best, trials, used = search(True, "stopped.sqlite")
    assert (best.prompt.text, best.prompt.retrieval, best.score.cer) == (
        full_best.prompt.text, full_best.prompt.retrieval, full_best.score.cer)
    assert best.score.cer == 0.0 and best.prompt.retrieval.signature == OCR_TFIDF
    # the page-signature rule echoes another issuer's answer: dropped before the end of val
    assert used < full_used and len(trials) < len(full_trials)
    assert all(t.split == "val" and t.score.n == len(visible.val) for t in trials)  # only full scores compete


def test_an_ocr_text_retrieval_winner_round_trips_through_the_book_with_exact_parity(tmp_path):
    data = issuer_task(tmp_path / "data")
    proc = run_cli(tmp_path, data, "optimizer=retrieval", "optimizer.manual_candidates=[]", "model.echo_first_demo=true",
                   "model._target_=tests.scripted_answer_model.ScriptedReader", "optimizer.ks=[1]")
    assert proc.returncode == 0, proc.stderr[-3000:]
    book_path = tmp_path / "out" / "Scripted-Reader_sep_none.book.json"
    (entry,) = load_book(book_path).entries
    assert entry.retrieval.signature == OCR_TFIDF and entry.test_cer == 0.0
    out = tmp_path / "applied.csv"
    applied = _apply(book_path, data, "--split", "test", "--out", out)
    assert applied.returncode == 0, applied.stderr[-3000:]
    figures = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    assert [p["cer"] for p in figures["pairs"]] == [entry.test_cer]
    runtime = PromptRuntime(book_path, allow=("tests.",))
    test_examples = [e for e in load_task(data).examples if e.source_row in
                     {r["row"] for r in csv.DictReader(out.open(encoding="utf-8"))}]
    assert test_examples and all(runtime.prompt_for(e).demos[0].answer == e.answer for e in test_examples)
