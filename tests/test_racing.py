"""Racing cuts answer-model calls and never loses the winner; its minibatch scores never win."""

import dataclasses

from optimize.answer_store import AnswerStore
from optimize.evaluator import Budget, Evaluator
from optimize.racing import clearly_worse
from prompt_opt_api import ExampleResult, Prompt
from tasks.cer_metric import CerMetric
from tasks.docqa_csv import load_task
from tasks.pair_splits import SplitConfig, split_pairs
from tests.scripted_answer_model import ScriptedAnswerModel
from tests.task_factory import make_task

GOOD = Prompt("{question} Ответь только значением.")
BASE = Prompt("{question}")
BADS = [Prompt(f"Опиши документ, вариант {i}.") for i in range(5)]


def _results(cers):
    return [ExampleResult(source_row=f"r{i}", answer="a", prediction="b", cer=c, exact=c == 0) for i, c in enumerate(cers)]


def test_clearly_worse_needs_a_consistent_gap():
    assert clearly_worse(_results([1, 1, 1, 1]), _results([0, 0, 0, 0]))
    assert not clearly_worse(_results([1, 0, 1, 0]), _results([0, 0, 0, 0]))  # one tie in two: not clear
    assert not clearly_worse(_results([0, 0, 0, 0]), _results([1, 1, 1, 1]))


def test_one_chatty_answer_cannot_decide_a_race():
    # the incumbent's one chatty answer (CER 25) would, unclipped, outweigh three examples
    # the candidate gets wholly wrong; clipped at 1, the candidate is clearly worse
    assert clearly_worse(_results([1, 1, 1, 1]), _results([25.0, 0, 0, 0]))


def _evaluator(tmp_path, seen):
    task = load_task(make_task(tmp_path / "data", n_images=30, with_second_pair=False))
    (pair,), _ = split_pairs(task.examples, SplitConfig())
    visible = dataclasses.replace(pair, test=())
    model = ScriptedAnswerModel()
    ev = Evaluator(model, AnswerStore(tmp_path / "s.sqlite"), CerMetric(), visible, Budget(None),
                   listener=lambda p, split, s: seen.append((p.text, split, s.n)))
    return ev, visible, model


def test_race_drops_losers_after_the_minibatch_and_keeps_the_winner(tmp_path):
    seen = []
    ev, pair, model = _evaluator(tmp_path, seen)
    n_val = len(pair.val)
    assert n_val == 9
    scores = ev.race([BASE, *BADS, GOOD], pair.val, minibatch=4)
    assert scores[0] is not None and scores[-1] is not None and scores[-1].cer == 0.0
    assert all(s is None for s in scores[1:-1])  # every bad prompt dropped after 4 examples
    # baseline: full val; each bad one: 4; GOOD: 4 then the other 5 (the first 4 are not paid twice)
    assert ev.budget.used == n_val + 5 * 4 + n_val
    assert model.calls == ev.budget.used
    racing_labels = {split for text, split, n in seen if n == 4}
    assert racing_labels == {"val-subset"}
    full = [(text, n) for text, split, n in seen if split == "val"]
    assert full == [(BASE.text, n_val), (GOOD.text, n_val)]


def test_without_racing_every_candidate_pays_full_val(tmp_path):
    seen = []
    ev, pair, _ = _evaluator(tmp_path, seen)
    for prompt in [BASE, *BADS, GOOD]:
        ev.score(prompt, pair.val)
    assert ev.budget.used == 7 * len(pair.val)
