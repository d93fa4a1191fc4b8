"""Plugins that cheat through the public plugin API only get nothing.

Each cheater below exploits one hole a plugin author found with the public API alone; the
run's result must be what an honest plugin with the same honest scores gets. The answer
model used here answers correctly exactly when the text it is shown contains the answer,
which is how every one of these cheats turned into a fake test CER.
"""

import csv
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from PIL import Image

from optimize.advisor_session import AdvisorSession
from optimize.answer_store import AnswerStore
from optimize.evaluator import EvaluatorClosed
from optimize.run_summary import summary_lines
from optimize.shown_pair import row_label
from prompt_opt_api import (
    AdvisorBudgetExhausted,
    AdvisorCharges,
    Prompt,
    Provenance,
    baseline_prompt,
)
from tests.engine_harness import Plugin, run_engine
from tests.graph_walk import public_parts, walk
from tests.scripted_advisor import ScriptedAdvisor
from tests.scripted_answer_model import ScriptedAnswerModel
from tests.task_factory import make_task

BASELINE = baseline_prompt().text


def manual(detail):
    """A hand-written prompt's provenance, told apart by ``detail`` (label ``manual:<detail>``)."""
    return Provenance("manual", "manual", detail)


class ShownAnswerModel(ScriptedAnswerModel):
    """Answers right exactly when the text it is shown contains the answer (else a wrong
    answer), and records every request it gets: the prompt's type and text's type."""

    name = "Shown-VLM"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.requests = []

    def _one(self, prompt, example):
        self.requests.append((type(prompt), type(prompt.text), prompt.text))
        text = prompt.render(example)
        return example.answer if example.answer.casefold() in text.casefold() else "не знаю"


def _run(tmp_path, body, model=None, session=None, **kwargs):
    """``body`` run as a plugin (one that asks for an advisor when given a session), the model shown
    answers unless told otherwise, the run kept in the results folder."""
    return run_engine(tmp_path, Plugin(body, session is not None), model=model or ShownAnswerModel(), session=session,
                      results=True, **kwargs)


def _outcome(run):
    """What a run reports, for comparing a cheater with an honest plugin."""
    return ({k: run.row[k] for k in ("optimal prompt", "cer", "val_cer", "answer_model_evaluations")},
            [(t["split"], t["prompt"], t["cer"]) for t in run.trials])


# -- hole 1: the engine scores its own plain copy, never the plugin's object -------------------

class RendersTheAnswer(Prompt):
    """A Prompt whose render adds the example's answer: what a model sees is not what is keyed."""

    def render(self, example):
        return super().render(example) + " " + example.answer


class SlyText(str):
    """A str whose replace (what Prompt.render calls) adds the scripted model's exact marker."""

    def replace(self, old, new, count=-1):
        return str.replace(self, old, new, count) + " Ответь только значением."


def test_a_prompt_subclass_with_its_own_render_never_reaches_the_model(tmp_path):
    def cheat(pair, evaluator, advisor):
        evaluator.score(baseline_prompt(), pair.val)
        evaluator.score(RendersTheAnswer("Ответ: {question}", provenance=manual("cheat")), pair.val)

    def honest(pair, evaluator, advisor):
        evaluator.score(baseline_prompt(), pair.val)
        evaluator.score(Prompt("Ответ: {question}", provenance=manual("cheat")), pair.val)

    run = _run(tmp_path / "cheat", cheat)
    assert {(p, t) for p, t, _ in run.model.requests} == {(Prompt, str)}  # only plain copies reached the model
    assert run.row["optimal prompt"] == BASELINE and run.row["cer"] > 0.5  # no answer shown
    assert _outcome(run) == _outcome(_run(tmp_path / "honest", honest))


def test_a_str_subclass_text_is_copied_before_anything_is_computed(tmp_path):
    sly = Prompt(SlyText("Опиши документ."), provenance=Provenance(SlyText("manual"), SlyText("manual"), SlyText("sly")))
    # it passes a `type(prompt) is Prompt` check, and its own render would carry the marker
    assert type(sly) is Prompt and sly.render(SimpleNamespace(question="?")).endswith("значением.")

    def cheat(pair, evaluator, advisor):
        evaluator.score(baseline_prompt(), pair.val)
        score = evaluator.score(sly, pair.val)
        assert score.exact_match == 0.0  # the plain text "Опиши документ." is wrong on every example

    def honest(pair, evaluator, advisor):
        evaluator.score(baseline_prompt(), pair.val)
        evaluator.score(Prompt("Опиши документ.", provenance=manual("sly")), pair.val)

    store = AnswerStore(tmp_path / "s.sqlite")
    model = ScriptedAnswerModel()  # exact when the rendered text carries "только значением"
    run = _run(tmp_path, cheat, model=model, store=store)
    trials = run.trials
    assert run.row["optimal prompt"] == BASELINE
    assert {t["origin"] for t in trials} >= {"manual:sly"} and all(type(t["prompt"]) is str for t in trials)
    assert all(type(t["origin"]) is str and type(t["author"]) is str for t in trials)
    # nothing was cached under the innocent text: an honest later run gets the honest answers
    later = ScriptedAnswerModel()
    again = _run(tmp_path, honest, model=later, store=store, out="honest")
    assert later.calls == 0  # every answer from the cache...
    assert _outcome(again) == _outcome(run)  # ...and the same, honest, ones


# -- hole 2: no path to the task's files; a test-only answer in the text cannot win ------------

def test_examples_handed_to_optimizers_name_no_task_file(tmp_path):
    seen = {}

    def careless(pair, evaluator, advisor):
        examples = pair.train + pair.val
        seen["texts"] = [str(v) for ex in examples for v in vars(ex).values()]
        seen["rows"] = [r.source_row for r in evaluator.score(baseline_prompt(), pair.val).results]
        # a plausible "gazetteer from the data file": look for the CSV next to the pages
        folders = {Path(ex.image).parent for ex in examples} | {Path(ex.image).parent.parent for ex in examples}
        seen["csv_found"] = [str(p) for folder in folders for p in folder.glob("*.csv")]
        seen["page_folder"] = sorted(p.name for p in Path(examples[0].image).parent.iterdir())
        seen["pages_readable"] = all(Image.open(ex.image).size == (160, 60) for ex in examples)
        seen["folder"] = Path(examples[0].image).parent

    run = _run(tmp_path, careless)
    data = str(tmp_path / "data")
    assert not [t for t in seen["texts"] + seen["rows"] if data in t or "task.csv" in t]
    assert seen["rows"] == [row_label(ex.source_row, "") for ex in run.pair.val] and all(seen["rows"])
    assert seen["csv_found"] == [] and seen["pages_readable"]
    # the page folder holds this pair's train and val pages only, and is gone after the pair
    assert len(seen["page_folder"]) == len(run.pair.train) + len(run.pair.val)
    assert not seen["folder"].exists()
    # the engine keeps the full rows in its own records
    rows = [p["row"] for t in run.trials for p in t["predictions"]]
    assert rows and all(r.startswith(str(tmp_path / "data" / "task.csv")) for r in rows)
    assert run.row["status"].startswith("ok")


def _every_answer(csv_path):
    with open(csv_path, encoding="utf-8") as fh:
        return sorted({row["answer"] for row in csv.DictReader(fh)})


def test_a_prompt_carrying_a_test_only_answer_cannot_win(tmp_path):
    make_task(tmp_path / "data", n_images=10, with_second_pair=False)
    csv_path = tmp_path / "data" / "task.csv"

    def from_the_data_file(pair, evaluator, advisor):
        # "possible values": every answer of the field, read from the data file
        values = ", ".join(_every_answer(csv_path))
        evaluator.score(baseline_prompt(), pair.val)
        evaluator.score(Prompt(f"{{question}} Возможные значения: {values}.", provenance=manual("gazetteer")), pair.val)
        own = ", ".join(sorted({ex.answer for ex in pair.train + pair.val}))
        evaluator.score(Prompt(f"{{question}} Например: {own}.", provenance=manual("train-and-val")), pair.val)

    run = _run(tmp_path, from_the_data_file)
    row = run.row
    gazetteer = [t for t in run.trials if t["origin"] == "manual:gazetteer"][0]
    assert gazetteer["cer"] == 0.0  # it did win val...
    # ...and cannot win: the next best (train and val answers only, also exact on val) does
    assert row["origin"] == "manual:train-and-val" and row["val_cer"] == 0.0
    assert row["cer"] > 0.0  # honest: the test answers are not in its text
    (barred,) = row["disqualified"]
    assert barred["origin"] == "manual:gazetteer" and "test row" in barred["reason"] and "cannot win" in barred["reason"]
    assert "disqualified" in row["status"]
    record = run.record
    digest = record.pairs[run.pair.key]
    assert digest["disqualified"][0]["reason"] == barred["reason"]
    assert all(t["prompt"] != gazetteer["prompt"] for t in digest["top"])  # never on the leaderboard
    assert any("disqualified" in line and run.pair.key in line for line in summary_lines(record, run.summary.rows))
    # no test-scoring of the barred prompt either
    assert [t["origin"] for t in run.trials if t["split"] == "test"] == ["manual:train-and-val"]


def test_a_prompt_listing_train_and_val_answers_only_is_not_disqualified(tmp_path):
    def honest(pair, evaluator, advisor):
        own = ", ".join(sorted({ex.answer for ex in pair.train + pair.val}))
        evaluator.score(Prompt(f"{{question}} Например: {own}.", provenance=manual("train-and-val")), pair.val)

    run = _run(tmp_path, honest)
    row = run.row
    assert row["origin"] == "manual:train-and-val" and row["disqualified"] == [] and "disqualified" not in row["status"]


# -- hole 5: work after optimize() returns ---------------------------------------------------

def test_a_thread_that_keeps_scoring_after_optimize_returns_gets_no_answer(tmp_path):
    outcome = {"scored": 0}
    started = threading.Event()

    def leaves_a_thread(pair, evaluator, advisor):
        def keep_scoring():
            for i in range(200):
                try:
                    evaluator.score(Prompt(f"{{question}} вариант {i}"), pair.val)
                    outcome["scored"] += 1
                    started.set()
                except EvaluatorClosed as err:
                    outcome["refused"] = str(err)
                    return
                time.sleep(0.01)

        threading.Thread(target=keep_scoring, daemon=True).start()
        started.wait(5)  # returns while the thread is still scoring

    model = ShownAnswerModel(delay_s=0.005)
    run = _run(tmp_path, leaves_a_thread, model=model)
    time.sleep(0.3)  # the thread has had every chance to go on
    assert "closed" in outcome.get("refused", "")
    assert outcome["scored"] >= 1
    calls = len(model.requests)
    time.sleep(0.1)
    assert len(model.requests) == calls  # nothing answered after the run
    # every request the model answered is counted and every score recorded
    assert run.summary.model_calls == calls == run.row["answer_model_evaluations"]
    # a prompt handed in without provenance is credited to the optimizer that scored it
    assert len([t for t in run.trials if t["split"] == "val" and t["origin"] == "optimizer:plugin"
                and t["author"] == "plugin"]) == outcome["scored"]


# -- hole 6: the baseline is always scored -----------------------------------------------------

def test_the_engine_scores_the_baseline_when_the_plugin_skips_it(tmp_path):
    def skips_it(pair, evaluator, advisor):
        evaluator.score(Prompt("Опиши документ {question}", provenance=manual("worse")), pair.val)  # CER 1 on val

    run = _run(tmp_path, skips_it, model=ScriptedAnswerModel(), budget=3)  # budget spent
    row = run.row
    assert row["optimal prompt"] == BASELINE and row["val_cer"] < 1.0
    assert "the engine did" in row["status"]
    assert [(t["split"], t["prompt"]) for t in run.trials] == [
        ("val", "Опиши документ {question}"), ("val", BASELINE), ("test", BASELINE)]


def test_a_plugin_that_scores_the_baseline_is_not_scored_twice(tmp_path):
    def scores_it(pair, evaluator, advisor):
        evaluator.score(baseline_prompt(), pair.val)
        evaluator.score(Prompt("Опиши документ {question}", provenance=manual("worse")), pair.val)

    run = _run(tmp_path, scores_it, model=ScriptedAnswerModel())
    assert [t["prompt"] for t in run.trials if t["split"] == "val"] == [
        BASELINE, "Опиши документ {question}"]
    assert run.row["status"] == "ok" and run.row["answer_model_evaluations"] == 3 + 3 + 3


# -- hole 3: the advisor an optimizer gets is a read-only view ---------------------------------

COUNTING_REPLY = "<prompt>{question} Ответь только значением.</prompt>"


def counting_advisor(name="Counting"):
    """Replies with a fixed prompt; ``len(advisor.asked)`` counts the requests that really reached it."""
    return ScriptedAdvisor([COUNTING_REPLY], name=name)


def test_the_advisor_budget_cannot_be_raised_reset_or_bypassed(tmp_path):
    attempts = {}

    def budget_breaker(pair, evaluator, advisor):
        messages = [{"role": "user", "content": "write a prompt"}]
        for name, action in {
            "raise max_calls": lambda: setattr(advisor, "max_calls", 100),
            "reset the charges": lambda: setattr(advisor, "charges", lambda: AdvisorCharges()),
            "charge a negative amount": lambda: advisor.charge_finished(-5, 0.0),
            "reach the client": lambda: advisor.inner.reply(messages),
            "replace usage": lambda: setattr(advisor, "usage", None),
            "new attribute": lambda: setattr(advisor, "budget", None),
        }.items():
            try:
                action()
                attempts[name] = "done"
            except AttributeError:
                attempts[name] = "refused"
        advisor.usage.calls = 0  # a copy: changes nothing
        for sample in range(6):
            try:
                advisor.complete(messages, sample=sample)
            except AdvisorBudgetExhausted:
                attempts.setdefault("exhausted at", sample)
        for member in advisor.members():
            assert not hasattr(member, "inner") and not hasattr(member, "max_calls")
        attempts["usage seen"] = advisor.usage.calls
        evaluator.score(baseline_prompt(), pair.val)

    inner = counting_advisor()
    store = AnswerStore(tmp_path / "s.sqlite")
    session = AdvisorSession(inner, store, max_calls=2)
    run = _run(tmp_path, budget_breaker, session=session, store=store)
    assert attempts == {"raise max_calls": "refused", "reset the charges": "refused",
                        "charge a negative amount": "refused", "reach the client": "refused",
                        "replace usage": "refused", "new attribute": "refused", "exhausted at": 2, "usage seen": 2}
    assert len(inner.asked) == 2 == run.row["advisor_calls"] == session.usage.calls


def test_an_honest_plugin_asks_through_the_view_as_before(tmp_path):
    from optimizers.advisor import AdvisorOptimizer

    store = AnswerStore(tmp_path / "s.sqlite")
    inner = counting_advisor()
    session = AdvisorSession(inner, store, max_calls=5)
    row = run_engine(tmp_path, AdvisorOptimizer(n_candidates=1, max_reasks=0), session=session, store=store).row
    assert row["optimal prompt"] == "{question} Ответь только значением." and row["author"] == "Counting"
    assert row["advisor_calls"] == len(inner.asked) == session.usage.calls == 1


# -- hole 4: invented authors cost nothing -----------------------------------------------------

def test_invented_authors_under_a_panel_are_refused_and_cost_no_test_call(tmp_path):
    from models.advisor_panel import AdvisorPanel

    refused = []

    def invents_authors(pair, evaluator, advisor):
        evaluator.score(baseline_prompt(), pair.val)
        names = [m.name for m in advisor.members()]
        assert names == ["A", "B"]
        advisor.members()[0].complete([{"role": "user", "content": "write a prompt"}])  # A writes "вариант 0"
        for i, author in enumerate(["A", "Mallory", "Eve", "Trent", "Oscar"]):
            try:
                written = Provenance("critic", author, "round1")
                evaluator.score(Prompt(f"{{question}} вариант {i}", provenance=written), pair.val)
            except ValueError as err:
                refused.append((author, str(err)))

    store = AnswerStore(tmp_path / "s.sqlite")
    writer_a = ScriptedAdvisor(["<prompt>{question} вариант 0</prompt>"], name="A")
    session = AdvisorSession(AdvisorPanel([writer_a, counting_advisor("B")]), store)
    model = ScriptedAnswerModel()
    run = _run(tmp_path, invents_authors, model=model, session=session, store=store)
    row = run.row
    assert [a for a, _ in refused] == ["Mallory", "Eve", "Trent", "Oscar"]
    assert "not one of this run's advisors" in refused[0][1]
    by_author = row["by_author"]
    assert set(by_author) == {"A", "dataset"}  # an invented author appears nowhere
    assert {a for a, e in by_author.items() if e["test_cer"] is not None} == {"A", "dataset"}
    # nothing was charged or answered for a refused prompt
    assert model.calls == row["answer_model_evaluations"] == 2 * 3 + 3 + 3
    assert sum(t["split"] == "test" for t in run.trials) == 2


@pytest.mark.parametrize("provenance,message", [
    (Provenance("oracle", "manual"), "unknown kind 'oracle'"),
    (Provenance("advisor", "GPT4o"), "not one of this run's advisors"),  # the run has no advisor
    (Provenance("manual", "GPT4o"), "expected 'manual'"),
    (Provenance("advisor", "GPT4o").derived("fewshot"), "not one of this run's advisors"),  # checked up the parents
    (Provenance("fewshot", "GPT4o", parent=Provenance("manual", "manual")), "expected 'manual'"),
])
def test_a_provenance_the_run_does_not_allow_is_refused_before_anything_is_charged(tmp_path, provenance, message):
    errors = []

    def claims(pair, evaluator, advisor):
        evaluator.score(baseline_prompt(), pair.val)
        try:
            evaluator.score(Prompt("{question} вариант", provenance=provenance), pair.val)
        except ValueError as err:
            errors.append(str(err))

    model = ScriptedAnswerModel()
    run = _run(tmp_path, claims, model=model)
    assert len(errors) == 1 and message in errors[0]
    assert run.row["answer_model_evaluations"] == model.calls == 3 + 3  # the baseline on val and test
    assert [t["prompt"] for t in run.trials if t["split"] == "val"] == [BASELINE]


# -- hole 7: the results folder and the store are not reachable through anything public --------

def _public_strings(root, depth=6):
    """Every string reachable from ``root`` through public attributes, properties and
    zero-argument public methods (what a plausible plugin reads), and the objects met."""
    met = list(walk(root, public_parts, depth))
    return [str(o) for o in met if isinstance(o, (str, Path))], [o for o in met if not isinstance(o, (str, Path))]


def test_nothing_an_optimizer_receives_leads_to_the_store_or_the_results(tmp_path):
    received = {}

    def records_what_it_got(pair, evaluator, advisor):
        received.update(pair=pair, evaluator=evaluator, advisor=advisor)
        evaluator.score(baseline_prompt(), pair.val)

    store = AnswerStore(tmp_path / "store" / "s.sqlite")
    session = AdvisorSession(counting_advisor(), store)
    _run(tmp_path, records_what_it_got, session=session, store=store)
    strings, objects = _public_strings(list(received.values()))
    pair = received["pair"]  # the walk reaches what a plugin reads: the pair's questions and examples
    assert pair.val[0].question in strings and any(o is pair.val[0] for o in objects)
    for secret in (tmp_path / "store", tmp_path / "results", tmp_path / "out", tmp_path / "data"):
        assert not [s for s in strings if str(secret) in s], secret
    assert not [o for o in objects if isinstance(o, (AnswerStore, AdvisorSession))]


@pytest.mark.parametrize("attempt", ["inner", "_cache", "max_usd"])
def test_the_advisor_view_has_no_engine_attribute(tmp_path, attempt):
    from optimize.advisor_session import AdvisorView

    view = AdvisorView(AdvisorSession(counting_advisor(), AnswerStore(tmp_path / "s.sqlite")))
    with pytest.raises(AttributeError):
        getattr(view, attempt)
