"""Error classes of wrong answers: the pure classifier, the evaluator's classes, the run record's
counts, and their use by the demo searches, the critic and the rule edits."""

from __future__ import annotations

import dataclasses

import pytest

from optimize.answer_store import AnswerStore
from optimize.evaluator import Budget, Evaluator
from optimizers.critic import CriticOptimizer
from optimizers.fewshot import FewShotOptimizer, _BestSet
from optimizers.prompt_edits import format_errors_dominate, rule_edits
from optimizers.retrieval import RetrievalOptimizer, _RuleSearch
from prompt_opt_api import Example, ExampleResult, Prompt, Score
from prompt_opt_api.demo_retrieval import PAGE_GRAY16, DemoRetrieval
from prompt_opt_api.error_classes import (
    CHATTY,
    COPIED_DEMO,
    ELSEWHERE_ON_PAGE,
    EMPTY,
    FORMAT,
    NOT_ON_PAGE,
    OTHER,
    OTHER_SCRIPT,
    classify_error,
    copies_a_demo,
    format_key,
    repeated_copy,
)
from tasks.cer_metric import CerMetric
from tasks.docqa_csv import load_task
from tasks.pair_splits import SplitConfig, split_pairs
from tests.engine_harness import run_engine
from tests.scripted_advisor import ScriptedAdvisor
from tests.scripted_answer_model import ScriptedAnswerModel, ScriptedReader
from tests.task_factory import draw_image, issuer_task, make_task, write_csv

PAGE = "SHOP ALPHA TRADING\nDATE 25/12/2018 10:30\nSUBTOTAL 8.50\nTOTAL RM 9.00\nCHANGE 1.00\nitem 123"


# -- the pure classifier -----------------------------------------------------------------
@pytest.mark.parametrize("answer, prediction, demos, page, kind", [
    ("9.00", "", (), PAGE, EMPTY),
    ("9.00", " «» ", (), PAGE, EMPTY),
    ("SUPERMARKET", "SUPЕRMARKET", (), PAGE, OTHER_SCRIPT),  # a Cyrillic Е inside Latin letters
    ("ABEKMHOPCTYX", "АВЕКМНОРСТУХ", (), PAGE, OTHER_SCRIPT),  # every letter a Cyrillic look-alike
    ("МОСКВА", "MOCKBA", (), None, OTHER_SCRIPT),  # and the reverse
    ("SHOP ALPHA", "SHОP ALFA", (), PAGE, OTHER_SCRIPT),  # mixes scripts (a Cyrillic О), misread besides
    ("RM 9.00", "9.00", (), PAGE, FORMAT),  # a currency prefix dropped
    ("25/12/2018", "25/12/2018 10:30", (), PAGE, FORMAT),  # a time appended
    ("25.12.2018", "2018-12-25", (), PAGE, FORMAT),  # the same date, year first
    ("12.50", "12,50", (), PAGE, FORMAT),  # another separator
    ("9.00", "8.50", ("8.50", "9.00"), PAGE, COPIED_DEMO),  # a demo's answer, not this page's
    ("9.00", "9.00 total amount paid here", (), PAGE, CHATTY),  # the answer inside extra words
    ("ABC", "The document does not say which shop this is", (), None, CHATTY),  # over 3x and 20 characters
    ("9.00", "1.00", (), PAGE, ELSEWHERE_ON_PAGE),  # the change, not the total
    ("9.00", "SUBTOTAL", (), PAGE, ELSEWHERE_ON_PAGE),
    ("9.00", "23", (), PAGE, NOT_ON_PAGE),  # only inside "123": not a span of the page
    ("2018", "2019", (), PAGE, NOT_ON_PAGE),  # a misread year
    ("2018", "2019", (), None, OTHER),  # no page text to search: a model that reads pixels
])
def test_each_wrong_answer_gets_its_class(answer, prediction, demos, page, kind):
    assert classify_error(answer, prediction, demo_answers=demos, page_text=page) == kind


def test_a_right_answer_has_no_class_and_the_metrics_equality_decides_it():
    assert classify_error("Иванов", " «Иванов». ") is None
    metric = CerMetric(casefold=False)
    assert classify_error("ABC", "abc", same=metric.exact) == FORMAT  # case counts under this metric
    assert classify_error("ABC", "abc") is None


def test_the_order_puts_the_right_value_in_another_form_before_where_a_wrong_value_came_from():
    # a demo's answer that is this page's value in another format is a format error, not a copy
    assert classify_error("RM 9.00", "9.00", demo_answers=["9.00"]) == FORMAT
    # a demo answer equal to the page's own answer is no copy: it is the right value
    assert classify_error("9.00", "9.0O", demo_answers=["9.00"], page_text=PAGE) != COPIED_DEMO
    # a copied demo answer that is also printed on the page is a copy
    assert classify_error("9.00", "1.00", demo_answers=["1.00"], page_text=PAGE) == COPIED_DEMO


def test_the_format_key_drops_a_trailing_time_currency_and_separators_only():
    assert format_key("RM12.50") == format_key("12.50 руб.") == format_key("$ 12,50") == "1250"
    assert format_key("25/12/2018 10:30:00 PM") == "25122018"
    assert format_key("мир") == "мир"  # a word ending in a currency letter keeps it
    assert format_key("10:30") == "1030"  # a time alone is the value


def test_one_demo_answer_repeated_on_over_a_quarter_of_the_other_pages_is_a_copied_set():
    def results(predictions, answers):
        return [ExampleResult(str(i), a, p, 0.0 if p == a else 1.0, p == a,
                              "" if p == a else COPIED_DEMO) for i, (p, a) in enumerate(zip(predictions, answers))]

    answers = ["a", "b", "c", "d", "e", "x", "x", "x"]  # 5 pages whose answer is not "x"
    two = results(["x", "x", "c", "d", "e", "x", "x", "x"], answers)
    assert repeated_copy(two).pages == 2 and repeated_copy(two).others == 5 and copies_a_demo(two)
    one = results(["x", "b", "c", "d", "e", "x", "x", "x"], answers)
    assert not copies_a_demo(one)  # 1 of 5 is not over a quarter


# -- the evaluator classifies every wrong answer --------------------------------------------
def _visible(csv_path):
    pairs, _ = split_pairs(load_task(csv_path).examples, SplitConfig())
    return dataclasses.replace(pairs[0], test=())


def test_the_evaluator_classifies_copies_of_fixed_and_retrieved_demos(tmp_path):
    visible = _visible(issuer_task(tmp_path))
    evaluator = Evaluator(ScriptedReader(echo_first_demo=True), AnswerStore(tmp_path / "s.sqlite"), CerMetric(),
                          visible, Budget(None))
    alpha = next(ex for ex in visible.train if ex.answer == "ALPHA")
    fixed = evaluator.score(Prompt("{question}", demos=(alpha,)), visible.val)
    assert {r.error_class for r in fixed.results if r.answer != "ALPHA"} == {COPIED_DEMO}
    assert {r.error_class for r in fixed.results if r.answer == "ALPHA"} == {""}
    rule = DemoRetrieval(k=1, pool=visible.train, signature=PAGE_GRAY16)
    retrieved = evaluator.score(Prompt("{question}", retrieval=rule), visible.val)
    wrong = [r for r in retrieved.results if not r.exact]
    assert wrong and {r.error_class for r in wrong} == {COPIED_DEMO}  # the demo retrieved for that page


def test_an_answer_in_the_wrong_script_is_classified_other_script(tmp_path):
    data = make_task(tmp_path / "data", n_images=10, with_second_pair=False)
    visible = _visible(data)
    for wrong_script, expected in ((True, {OTHER_SCRIPT}), (False, {""})):
        evaluator = Evaluator(ScriptedAnswerModel(exact_marker="EXACT", wrong_script=wrong_script),
                              AnswerStore(tmp_path / f"{wrong_script}.sqlite"), CerMetric(), visible, Budget(None))
        assert {r.error_class for r in evaluator.score(Prompt("{question} EXACT"), visible.val).results} == expected


# -- the run record --------------------------------------------------------------------------
def test_the_run_record_counts_the_winners_wrong_answers_by_class_on_val_and_test(tmp_path):
    from optimizers.manual import ManualOptimizer

    run = run_engine(tmp_path, ManualOptimizer(candidates=["{question} EXACT"]),
                     model=ScriptedAnswerModel(exact_marker="EXACT", wrong_script=True))
    (digest,) = run.run_json["pairs"].values()
    classes = digest["error_classes"]
    assert classes["val"]["n"] == len(run.pair.val) == classes["val"]["wrong"]
    assert classes["val"]["counts"][OTHER_SCRIPT] == len(run.pair.val)
    assert classes["test"]["counts"][OTHER_SCRIPT] == len(run.pair.test)
    assert classes["val"]["most_copied"] == 0


def test_the_run_record_counts_a_fewshot_winner_that_copies_its_demo(tmp_path):
    # one-letter answers: the baseline (one character short) answers nothing; a demo set wins by
    # copying its demo's letter, right on the pages of that letter and a copy on the others
    rows = []
    for i in range(20):
        draw_image(tmp_path / f"data/images/{i}.png", f"mark {i}")
        rows.append([f"images/{i}.png", "Mark?", "AB"[i % 4 == 0], "form", "mark", ""])
    data = write_csv(tmp_path / "data" / "task.csv", rows)
    run = run_engine(tmp_path, FewShotOptimizer(k=1, random_sets=1, swap_candidates=0, copy_guard=False),
                     model=ScriptedAnswerModel(echo_first_demo=True), data=data)
    (digest,) = run.run_json["pairs"].values()
    assert digest["winner"]["demos"]
    demo = digest["winner"]["demos"][0]["answer"]
    for split, examples in (("val", run.pair.val), ("test", run.pair.test)):
        errors = digest["error_classes"][split]
        others = sum(ex.answer != demo for ex in examples)
        assert others > 0 and errors["n"] == len(examples)
        assert errors["counts"][COPIED_DEMO] == errors["wrong"] == errors["most_copied"] == errors["copied_of"] == others


# -- the demo searches ---------------------------------------------------------------------
def _score(cer, copies):
    results = [ExampleResult(str(i), a, "x" if copies else a + "?", cer, False, COPIED_DEMO if copies else "other")
               for i, a in enumerate("abcd")]
    return Score(cer=cer, exact_match=0.0, results=tuple(results))


class _StubPool:
    """A pool that returns the scores it is given, in order (the search's own choice under test)."""

    budget_spent = False

    def __init__(self, scores):
        self.scores = list(scores)

    def add(self, prompts, step, stop_when_beaten=False, keep_ties=False):
        return [(prompts[0], self.scores.pop(0))]


@pytest.mark.parametrize("first, second, keeps_second", [
    ((0.5, True), (0.5, False), True),  # a tie: the rule that copies no demo is preferred
    ((0.5, False), (0.5, True), False),  # a tie against one that copies: the earlier stays
    ((0.5, False), (0.5, False), False),  # a plain tie: the earlier stays
    ((0.5, True), (0.6, False), False),  # worse on val: never preferred
    ((0.5, False), (0.4, True), True),  # better on val: always
])
def test_a_demo_search_prefers_demos_that_copy_no_answer_on_a_tie_only(tmp_path, first, second, keeps_second):
    pair = _visible(issuer_task(tmp_path))
    search = _RuleSearch(_StubPool([_score(*first), _score(*second)]), Prompt("{question}"), pair, False)
    search.try_rule(2, PAGE_GRAY16, False, step=1)
    search.try_rule(2, PAGE_GRAY16, True, step=3)
    assert search.best.distinct_answers is keeps_second
    best = _BestSet([pair.train[0]], *first)
    best.consider(Prompt("{question}", demos=(pair.train[1],)), _score(*second))
    assert (best.demos == [pair.train[1]]) is keeps_second


class _CerByPrompt:
    """An evaluator stub: each prompt's CER per val example is scripted."""

    def __init__(self, cers):
        self.cers = cers

    def score(self, prompt, examples):
        results = tuple(ExampleResult(ex.source_row, ex.answer, "x", self.cers[prompt.text][ex.source_row], False)
                        for ex in examples)
        return Score(cer=sum(r.cer for r in results) / len(results), exact_match=0.0, results=results)


def test_the_early_stop_scores_a_candidate_that_may_tie_to_the_end_when_ties_are_kept(tmp_path):
    from optimizers.prompt_pool import PromptPool

    pair = _visible(issuer_task(tmp_path, n=24))
    rows = [ex.source_row for ex in pair.val]
    assert len(rows) >= 6
    best = {r: 1.0 if i == 0 else 0.0 for i, r in enumerate(rows)}  # one page wrong
    tie = {r: 1.0 if i == 1 else 0.0 for i, r in enumerate(rows)}  # another page wrong: the same sum, early
    for keep_ties, scored in ((False, []), (True, ["tie"])):
        pool = PromptPool(pair, _CerByPrompt({"best": best, "tie": tie}), "retrieval", minibatch=2)
        pool.add([Prompt("best")], step=0)
        added = pool.add([Prompt("tie")], step=1, stop_when_beaten=True, keep_ties=keep_ties)
        assert [p.text for p, _ in added] == scored


def test_retrieval_tries_distinct_answers_when_its_best_rule_copies_a_demo(tmp_path):
    visible = _visible(issuer_task(tmp_path))

    def rules(copy_guard):
        optimizer = RetrievalOptimizer(ks=(2,), signatures=(PAGE_GRAY16,), distinct_answers=False,
                                       copy_guard=copy_guard, stop_when_beaten=False)
        evaluator = Evaluator(ScriptedReader(echo_first_demo=True), AnswerStore(tmp_path / f"{copy_guard}.sqlite"),
                              CerMetric(), visible, Budget(None))
        trials = optimizer.optimize(visible, evaluator, None)
        assert evaluator.budget.used <= optimizer.planned_evaluations(visible, None)
        return [(t.prompt.retrieval.distinct_answers, copies_a_demo(t.score.results))
                for t in trials if t.prompt.retrieval]

    assert rules(False) == [(False, True)]  # the page-signature rule copies the other issuer's answer
    assert rules(True)[0] == (False, True) and [d for d, _ in rules(True)] == [False, True]


def test_fewshot_scores_the_distinct_answers_variant_of_a_set_that_copies(tmp_path):
    data = make_task(tmp_path / "data", n_images=10, with_second_pair=False)
    visible = _visible(data)

    def sets(copy_guard):
        optimizer = FewShotOptimizer(k=2, random_sets=2, swap_candidates=0, copy_guard=copy_guard)
        evaluator = Evaluator(ScriptedAnswerModel(echo_first_demo=True), AnswerStore(tmp_path / f"{copy_guard}.sqlite"),
                              CerMetric(), visible, Budget(None))
        trials = optimizer.optimize(visible, evaluator, None)
        assert evaluator.budget.used <= optimizer.planned_evaluations(visible, None)
        return [t for t in trials if t.prompt.demos]

    plain, guarded = sets(False), sets(True)
    assert all(copies_a_demo(t.score.results) for t in plain) and len(guarded) == len(plain) + 1
    variant = guarded[-1]
    assert variant.prompt.provenance.detail == "distinct-answers"
    copied = repeated_copy(min(plain, key=lambda t: t.score.cer).score.results).value
    assert copied not in {d.answer.casefold() for d in variant.prompt.demos}
    assert len({d.answer for d in variant.prompt.demos}) == 2


# -- the critic and the format rule edit -----------------------------------------------------
def test_the_critic_tells_the_advisor_the_val_error_counts_by_class(tmp_path):
    requests = {}
    for wrong_script in (True, False):
        advisor = ScriptedAdvisor(["<prompt1>Поле {question}</prompt1>"])
        critic = CriticOptimizer(rounds=1, per_round=1, max_reasks=0, rule_edits=False)
        pair = run_engine(tmp_path / str(wrong_script), critic, advisor=advisor,
                          model=ScriptedAnswerModel(exact_marker="EXACT", wrong_script=wrong_script)).pair
        requests[wrong_script] = advisor.asked[0][0][1]["content"]
    n_val = len(pair.val)
    assert "validation documents, by kind" in requests[True]
    assert f"- {n_val} other_script: look-alike letters" in requests[True]
    assert "other_script" not in requests[False] and f"- {n_val} other: none of these" in requests[False]


def _money(answers):
    return [Example(image=None, question="Total?", answer=a, doc_class="receipt", question_type="total", bbox=None,
                    image_sha256=str(i)) for i, a in enumerate(answers)]


def _classified(kinds):
    return [ExampleResult(str(i), "a", "b", 1.0, False, kind) for i, kind in enumerate(kinds)]


def test_a_format_edit_naming_the_answers_shapes_comes_first_when_format_errors_dominate():
    train = _money(["RM9.00", "RM12.50", "RM105.20", "RM7.90"])
    base = Prompt("{question}")
    plain = rule_edits(base, train, ("value-only", "format"))
    dominated = rule_edits(base, train, ("value-only", "format"), errors=_classified([FORMAT, FORMAT, CHATTY]))
    assert [p.provenance.detail for p in plain] == ["value-only", "format"]
    assert [p.provenance.detail for p in dominated] == ["format", "value-only"]
    assert "ZZ9.99" in dominated[0].text and "ZZ99.99" in dominated[0].text and "ZZ9.99" not in plain[1].text
    assert "Write the answer in the form of these patterns" in dominated[0].text  # Latin answers: in English
    assert format_errors_dominate(_classified([FORMAT, FORMAT, CHATTY]))
    assert not format_errors_dominate(_classified([FORMAT, CHATTY, CHATTY]))
    assert not format_errors_dominate(_classified([FORMAT]))  # one error dominates nothing


def test_a_format_edit_adds_no_shapes_where_a_date_pins_the_form():
    train = _money(["25.12.2018", "01.02.2019", "13.07.2020"])
    edits = rule_edits(Prompt("{question}"), train, ("format",), errors=_classified([FORMAT, FORMAT]))
    assert [p.text for p in edits] == ["{question} Формат ответа: ДД.ММ.ГГГГ."]


class _DropsCurrency(ScriptedAnswerModel):
    """Answers the total without its currency prefix (a format error) unless told the shapes."""

    def _one(self, prompt, example):
        return example.answer if "patterns" in prompt.text else example.answer.removeprefix("RM")


def test_the_critic_tries_the_shapes_format_edit_when_its_val_answers_are_format_errors(tmp_path):
    rows = []
    for i in range(10):
        draw_image(tmp_path / f"data/images/{i}.png", f"total {i}")
        rows.append([f"images/{i}.png", "Total?", f"RM{i + 3}.{i}0", "receipt", "total", ""])
    data = write_csv(tmp_path / "data" / "task.csv", rows)
    critic = CriticOptimizer(rounds=0, rule_edits=True, rule_edit_kinds=("format",), manual_candidates=[])
    run = run_engine(tmp_path, critic, model=_DropsCurrency(), advisor=ScriptedAdvisor([]), data=data)
    (digest,) = run.run_json["pairs"].values()
    assert "patterns" in digest["winner"]["template"] and digest["error_classes"]["val"]["wrong"] == 0
