"""Plugins written to cheat get nothing: the sealed evaluator and full-val selection.

Each cheater below tries one way around the rules; the run loop's result must be what
an honest plugin with the same scores would get.
"""

import csv
import dataclasses

import pytest

from optimize.answer_store import AnswerStore
from optimize.evaluator import Evaluator
from optimize.results_files import merge_optimal_prompts
from optimize.run_record import TrialRecord
from optimize.selection import pick_best
from prompt_opt_api import (
    BudgetExhausted,
    Example,
    HeldOutAccessError,
    Optimizer,
    Pair,
    Prompt,
    Provenance,
    Score,
    Trial,
    baseline_prompt,
)
from tasks.cer_metric import CerMetric
from tasks.docqa_csv import load_task
from tasks.pair_splits import SplitConfig, split_pairs
from tests.engine_harness import run_engine
from tests.graph_walk import held_parts, walk
from tests.scripted_answer_model import ScriptedAnswerModel
from tests.task_factory import make_task

GOOD = Prompt("{question} Ответь только значением.", provenance=Provenance("manual", "manual", "good"))  # exact on every example
BAD = Prompt("Опиши документ.", provenance=Provenance("manual", "manual", "bad"))  # wrong on every example
# The data set's question: one character short on every example (CER about 0.15). The engine
# scores it on val when a plugin did not, so a plugin that skips it cannot win with worse.
BASELINE = baseline_prompt().text


class _Recorder(Optimizer):
    name = "recorder"

    def __init__(self, body):
        self.body = body

    def optimize(self, pair, evaluator, advisor):
        return self.body(pair, evaluator)


def test_optimizer_gets_no_test_split_and_its_evaluator_reaches_none(tmp_path):
    seen = {}

    def body(pair, evaluator):
        seen["pair"], seen["evaluator"] = pair, evaluator
        evaluator.score(baseline_prompt(), pair.val)
        return []

    full_pair = run_engine(tmp_path, _Recorder(body)).pair
    assert seen["pair"].test == () and len(full_pair.test) == 3
    evaluator = seen["evaluator"]
    # the public surface is exactly: score, race (built on score), a read-only budget, two counters,
    # the names of the page similarities retrieval may use, whether the model cuts demo pages,
    # and close (the run loop closes it when optimize() returns; a plugin closing it only stops itself)
    public = {name for name in dir(evaluator) if not name.startswith("_")}
    assert public == {"score", "race", "budget", "model_name", "model_calls", "cache_hits", "retrieval_signatures",
                      "cuts_demo_text", "close"}
    # nothing reachable from the evaluator (attributes, closures, bound methods) is a test example
    test_rows = {ex.source_row for ex in full_pair.test}
    reachable = _reachable_examples(evaluator, depth=10)
    assert reachable and not {ex.source_row for ex in reachable} & test_rows


def _reachable_examples(root, depth=6):
    """The examples any code holding ``root`` reaches (an example is not looked into)."""
    def parts(obj):
        return [] if isinstance(obj, Example) else held_parts(obj)

    return {obj for obj in walk(root, parts, depth) if isinstance(obj, Example)}


def test_uncharged_answers_and_budget_reset_are_not_public(tmp_path):
    attempts = {}

    def body(pair, evaluator):
        for name in ("answers", "model", "store", "reset"):
            attempts[name] = hasattr(evaluator, name)
        for action in ("set", "reset"):
            try:
                if action == "set":
                    evaluator.budget.used = 0
                else:
                    evaluator.budget.reset()
                attempts[f"budget.{action}"] = True
            except AttributeError:
                attempts[f"budget.{action}"] = False
        evaluator.score(BAD, pair.val)
        evaluator.score(GOOD, pair.val)  # 6 evaluations: the budget of 5 refuses it whole
        return []

    run = run_engine(tmp_path, _Recorder(body), budget=5)
    assert attempts == {"answers": False, "model": False, "store": False, "reset": False,
                        "budget.set": False, "budget.reset": False}
    # BAD on val (3), the engine's baseline on val (3, not the plugin's budget), the winner on test (3)
    assert run.row["optimal prompt"] == BASELINE and run.row["answer_model_evaluations"] == 3 + 3 + 3
    assert [t["prompt"] for t in run.trials if t["split"] != "test"] == [BAD.text, BASELINE]


def test_scoring_test_examples_read_from_the_csv_is_refused(tmp_path):
    outcome = {}

    def body(pair, evaluator):
        visible = {ex.image_sha256 for ex in pair.train + pair.val}
        stolen = [ex for ex in load_task(tmp_path / "data/task.csv").examples if ex.image_sha256 not in visible]
        outcome["stolen"] = len(stolen)
        with pytest.raises(HeldOutAccessError, match="not in this pair's train or val"):
            evaluator.score(GOOD, stolen)
        with pytest.raises(HeldOutAccessError):
            evaluator.score(GOOD, (*pair.val, stolen[0]))
        outcome["budget_used"] = evaluator.budget.used
        evaluator.score(BAD, pair.val)
        return []

    run = run_engine(tmp_path, _Recorder(body))
    assert outcome == {"stolen": 3, "budget_used": 0}  # refused before any charge or answer
    assert run.row["optimal prompt"] == BASELINE
    assert {t["split"] for t in run.trials} == {"val", "test"}


def test_lucky_subset_score_never_wins(tmp_path):
    def body(pair, evaluator):
        evaluator.score(BAD, pair.val)  # full val: CER 1
        lucky = evaluator.score(GOOD, pair.val[:1])  # one val example: CER 0
        twice = evaluator.score(GOOD, (*pair.val, pair.val[0]))  # every val example, one twice
        train = evaluator.score(GOOD, pair.train)
        assert lucky.cer == twice.cer == train.cer == 0.0
        return [Trial(GOOD, "val", lucky)]  # and it claims the subset score was on val

    run = run_engine(tmp_path, _Recorder(body))
    # the last val score is the engine's baseline (the plugin skipped it)
    assert [t["split"] for t in run.trials] == ["val", "val-subset", "val-subset", "train", "val", "test"]
    assert run.row["optimal prompt"] == BASELINE and 0 < run.row["val_cer"] < 0.5


def test_fabricated_trial_is_ignored(tmp_path):
    def body(pair, evaluator):
        evaluator.score(BAD, pair.val)
        fake = Score(cer=0.0, exact_match=1.0, results=())
        return [Trial(GOOD, "val", fake)]

    run = run_engine(tmp_path, _Recorder(body))
    assert run.row["optimal prompt"] == BASELINE
    assert GOOD.text not in {t["prompt"] for t in run.trials}


def test_budget_exhausted_refuses_whole_and_keeps_scores(tmp_path):
    def body(pair, evaluator):
        evaluator.score(BAD, pair.val)
        assert evaluator.budget.remaining == 1
        with pytest.raises(BudgetExhausted):
            evaluator.score(GOOD, pair.val)
        assert evaluator.budget.used == 3
        evaluator.score(GOOD, pair.val)  # propagates: the run loop keeps BAD's score
        return []

    row = run_engine(tmp_path, _Recorder(body), budget=4).row
    assert row["optimal prompt"] == BASELINE and row["status"].startswith("ok")


def test_ties_go_to_the_earliest_and_test_cer_never_decides(tmp_path):
    a, b = Prompt("first {question}"), Prompt("second {question}")
    records = [
        TrialRecord(a, {"split": "val", "n": 3, "cer": 0.5}),
        TrialRecord(b, {"split": "val-subset", "n": 1, "cer": 0.0}),
        TrialRecord(b, {"split": "val", "n": 3, "cer": 0.5}),
        TrialRecord(b, {"split": "val", "n": 2, "cer": 0.1}),  # a mislabelled partial score: n gives it away
    ]
    assert pick_best(records, n_val=3)[0] is a
    assert pick_best([r for r in records if r.split != "val"], n_val=3)[0] == baseline_prompt()

    results = tmp_path / "results"
    results.mkdir()
    header = "doc type question type,optimal prompt,cer,val_cer,n_test,optimizer\n"
    # equal val CER once rounded to 4 decimals; B has the better test CER and must not win by it
    (results / "M_sep_A.csv").write_text(header + "p q,short,0.90,0.20001,5,critic\n")
    (results / "M_sep_B.csv").write_text(header + "p q,a longer prompt,0.00,0.19999,5,critic\n")
    out = merge_optimal_prompts(results, "M")
    with out.open(encoding="utf-8") as fh:
        (row,) = list(csv.DictReader(fh))
    assert row["optimal prompt"] == "short" and row["advisor"] == "A"


def test_evaluator_for_test_scoring_is_separate(tmp_path):
    task = load_task(make_task(tmp_path / "data", n_images=10, with_second_pair=False))
    (pair,), _ = split_pairs(task.examples, SplitConfig())
    store = AnswerStore(tmp_path / "s.sqlite")
    visible = dataclasses.replace(pair, test=())
    with pytest.raises(HeldOutAccessError):
        Evaluator(ScriptedAnswerModel(), store, CerMetric(), visible).score(GOOD, pair.test)
    with pytest.raises(HeldOutAccessError):  # even given the full pair, test needs allow_test
        Evaluator(ScriptedAnswerModel(), store, CerMetric(), pair).score(GOOD, pair.test)
    tester = Evaluator(ScriptedAnswerModel(), store, CerMetric(), pair, allow_test=True)
    assert tester.score(GOOD, pair.test).cer == 0.0
    assert isinstance(pair, Pair)


def test_look_alike_examples_cannot_bring_their_own_answers(tmp_path):
    class Forged(Example):  # compares equal to a val example, carries the prediction as its answer
        def __eq__(self, other):
            return other == self.twin

        def __hash__(self):
            return hash(self.twin)

    def forge(ex):
        fake = Forged(**{**ex.__dict__, "answer": "не знаю"})
        object.__setattr__(fake, "twin", ex)
        return fake

    outcome = {}

    def body(pair, evaluator):
        evaluator.score(BAD, pair.val)
        forged = [forge(ex) for ex in pair.val]
        assert forged[0] == pair.val[0] and forged[0] in {pair.val[0]}  # it does pass as the real one
        same_fields = [Example(**{**ex.__dict__, "answer": "не знаю"}) for ex in pair.val]
        for attempt in (forged, same_fields):
            try:
                evaluator.score(BAD, attempt)
                outcome.setdefault("accepted", []).append(type(attempt[0]).__name__)
            except HeldOutAccessError:
                outcome.setdefault("refused", []).append(type(attempt[0]).__name__)
        return []

    trials = run_engine(tmp_path, _Recorder(body)).trials
    assert outcome == {"refused": ["Forged", "Example"]}
    assert [t["split"] for t in trials] == ["val", "val", "test"] and trials[0]["cer"] > 0.5


def test_demos_must_come_from_train(tmp_path):
    outcome = {}

    def body(pair, evaluator):
        visible = {ex.image_sha256 for ex in pair.train + pair.val}
        stolen_test = [ex for ex in load_task(tmp_path / "data/task.csv").examples
                       if ex.image_sha256 not in visible]
        for name, demos in (("val", pair.val[:1]), ("test", stolen_test[:1]), ("train", pair.train[:2])):
            try:
                evaluator.score(Prompt(BAD.text, demos=tuple(demos)), pair.val)
                outcome[name] = "scored"
            except HeldOutAccessError:
                outcome[name] = "refused"
        return []

    run_engine(tmp_path, _Recorder(body))
    assert outcome == {"val": "refused", "test": "refused", "train": "scored"}
