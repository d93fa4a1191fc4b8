"""Every real model and advisor call is charged once and counted once (plugins that try otherwise).

Each attack below is a plugin using the public API only, as an author trying to spend more
than the budget, hide calls from the totals or improve the run's number by failing would
write it; each has an honest counterpart whose result is unchanged. The scripted models
count the calls that really reached them, so a test compares real calls with every total
the run reports (the CSV row, ``run.json``, the summary).
"""

import json
import threading
import time

import pytest

from optimize.advisor_session import AdvisorSession
from optimize.answer_store import AnswerStore
from optimize.evaluator import Budget, Evaluator
from optimize.run_summary import summary_lines
from prompt_opt_api import (
    AdvisorBudgetExhausted,
    BudgetExhausted,
    Prompt,
    Provenance,
    baseline_prompt,
)
from prompt_opt_api.demo_retrieval import OCR_TFIDF, DemoRetrieval
from tasks.cer_metric import CerMetric
from tasks.docqa_csv import load_task
from tasks.pair_splits import SplitConfig, split_pairs
from tests.engine_harness import Plugin, one_pair, run_engine
from tests.scripted_advisor import ScriptedAdvisor
from tests.scripted_answer_model import ScriptedAnswerModel, ScriptedReader
from tests.task_factory import issuer_task

EXACT = "Ответь только значением."  # the scripted model answers exactly when the text has it


def manual(detail):
    return Provenance("manual", "manual", detail)


def _run(tmp_path, body, session=None, **kwargs):
    """``body`` run as a plugin (one that asks for an advisor when given a session), the run kept
    in the results folder."""
    return run_engine(tmp_path, Plugin(body, session is not None), session=session, results=True, **kwargs)


# -- single flight: a key is computed once, however many threads ask for it -------------------

PROMPTS = [Prompt(f"{{question}} вариант {i}", provenance=manual(f"v{i}")) for i in range(7)]


def _crowd(threads_n):
    """A plugin whose threads all score the baseline and PROMPTS, in order, at the same moment."""
    errors = []

    def crowd(pair, evaluator, advisor):
        start = threading.Barrier(threads_n)

        def worker():
            start.wait()
            try:
                for prompt in [baseline_prompt(), *PROMPTS]:
                    evaluator.score(prompt, pair.val)
            except Exception as err:  # noqa: BLE001 - reported by the test
                errors.append(err)

        threads = [threading.Thread(target=worker) for _ in range(threads_n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    return crowd, errors


KEYS = ("optimal prompt", "cer", "val_cer", "answer_model_evaluations", "status")


def test_threads_scoring_the_same_prompts_at_once_get_each_answer_computed_once(tmp_path):
    crowd, errors = _crowd(8)
    model = ScriptedAnswerModel(delay_s=0.1)
    run = _run(tmp_path / "crowd", crowd, model=model, budget=24)
    row = run.row
    assert errors == []  # 8 prompts x 3 val pages = 24: every thread's scores were paid once
    # every answer was computed once, and every total says so (the winner on test: 3 more)
    assert model.calls == 24 + 3
    assert row["answer_model_evaluations"] == run.summary.model_calls == model.calls
    assert run.record.cost.answer_model_evaluations == model.calls
    # and the run ends as one thread scoring the same prompts ends it
    alone = _run(tmp_path / "alone", _crowd(1)[0], budget=24)
    assert {k: row[k] for k in KEYS} == {k: alone.row[k] for k in KEYS}


def test_one_thread_scoring_the_same_prompts_is_counted_as_before(tmp_path):
    model = ScriptedAnswerModel()
    run = _run(tmp_path, _crowd(1)[0], model=model, budget=24)
    assert model.calls == 27 == run.row["answer_model_evaluations"] == run.summary.model_calls


def test_threads_charging_the_same_request_at_once_pay_for_it_once(tmp_path):
    """The charge is atomic: a thread that arrives while another is charging a request finds it paid."""

    class SlowBudget(Budget):  # widens the moment between seeing a request unpaid and paying for it
        def _charge(self, n):
            time.sleep(0.05)
            super()._charge(n)

    pair = one_pair(tmp_path)
    visible = type(pair)(pair.doc_class, pair.question_type, pair.train, pair.val, ())
    budget = SlowBudget(len(visible.val))
    evaluator = Evaluator(ScriptedAnswerModel(), AnswerStore(tmp_path / "s.sqlite"), CerMetric(), visible, budget)
    refused = []

    def worker():
        try:
            evaluator.score(baseline_prompt(), visible.val)
        except BudgetExhausted as err:
            refused.append(err)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert refused == [] and budget.used == len(visible.val)


def test_a_repeat_waiting_on_a_failed_first_computes_it_after_that_failure(tmp_path):
    """A thread waiting on another's answer is not left hanging when that one fails: it computes
    the answer itself, after the failure (never beside it)."""

    class FailsOnce(ScriptedAnswerModel):
        def answer(self, batch):
            started = time.monotonic()
            time.sleep(0.2)
            try:
                if not getattr(self, "failed", False):
                    self.failed = True
                    raise RuntimeError("transient")
                return super().answer(batch)
            finally:
                self.spans = [*getattr(self, "spans", []), (started, time.monotonic())]

    pair = one_pair(tmp_path)
    visible = type(pair)(pair.doc_class, pair.question_type, pair.train, pair.val, ())
    model = FailsOnce()
    evaluator = Evaluator(model, AnswerStore(tmp_path / "s.sqlite"), CerMetric(), visible, Budget(None))
    outcomes = []

    def worker():
        try:
            outcomes.append(evaluator.score(baseline_prompt(), visible.val).cer)
        except RuntimeError as err:
            outcomes.append(str(err))

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert not any(t.is_alive() for t in threads)
    assert sorted(map(str, outcomes))[1] == "transient" and model.calls == 3 == evaluator.model_calls
    (first, second) = sorted(model.spans)
    assert second[0] >= first[1]  # the second call began once the first had failed


# -- the advisor view is closed when optimize() returns -------------------------------------------

def test_a_thread_that_keeps_asking_the_advisor_after_optimize_returns_gets_no_reply(tmp_path):
    from optimize.advisor_session import AdvisorClosed

    outcome = {"asked": 0}
    started = threading.Event()

    def leaves_a_thread(pair, evaluator, advisor):
        evaluator.score(baseline_prompt(), pair.val)

        def keep_asking():
            for i in range(300):
                ask = advisor if i % 2 else advisor.members()[0]
                try:
                    ask.complete([{"role": "user", "content": f"write prompt {i}"}])
                    outcome["asked"] += 1
                    started.set()
                except AdvisorClosed as err:
                    outcome["refused"] = str(err)
                    return
                time.sleep(0.01)

        threading.Thread(target=keep_asking, daemon=True).start()
        started.wait(5)  # returns while the thread is still asking

    inner = ScriptedAdvisor(["<prompt>{question}</prompt>"], name="Counting")
    store = AnswerStore(tmp_path / "s.sqlite")
    session = AdvisorSession(inner, store)
    run = _run(tmp_path, leaves_a_thread, session=session, store=store,
               model=ScriptedAnswerModel(delay_s=0.05))
    time.sleep(0.3)  # the thread has had every chance to go on
    assert "closed" in outcome.get("refused", "")
    asked = len(inner.asked)
    time.sleep(0.1)
    assert len(inner.asked) == asked >= 1  # nothing asked after the run
    record = run.record
    assert run.row["advisor_calls"] == record.cost.advisor_calls == asked
    assert record.advisor_usage["calls"] == session.usage.calls == asked


def test_a_plugin_that_asks_the_advisor_before_it_returns_is_counted_as_before(tmp_path):
    def asks(pair, evaluator, advisor):
        evaluator.score(baseline_prompt(), pair.val)
        threads = [threading.Thread(target=advisor.complete, args=([{"role": "user", "content": f"p{i}"}],))
                   for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    inner = ScriptedAdvisor(["<prompt>{question}</prompt>"], name="Counting")
    store = AnswerStore(tmp_path / "s.sqlite")
    session = AdvisorSession(inner, store)
    run = _run(tmp_path, asks, session=session, store=store)
    assert len(inner.asked) == 4 == run.row["advisor_calls"] == run.record.advisor_usage["calls"]


# -- the run's mean counts failed pairs --------------------------------------------------------

WORSE = Prompt("Опиши документ {question}", provenance=manual("worse"))  # wrong on every page


def _honest(pair, evaluator, advisor):
    evaluator.score(baseline_prompt(), pair.val)
    good = f"{{question}} {EXACT}" if pair.question_type == "Фамилия" else WORSE.text
    evaluator.score(Prompt(good, provenance=manual("mine")), pair.val)


class _ModelFailingOnNumbers(ScriptedAnswerModel):
    """Wrong on every number question whatever the prompt (the pair a plugin does badly on)."""

    def _one(self, prompt, example):
        return "не знаю" if example.question_type == "Номер" else super()._one(prompt, example)


def test_a_plugin_that_fails_the_pairs_it_does_badly_on_cannot_lower_the_runs_mean(tmp_path):
    from optimize.run_mean import run_mean

    def fails_when_bad(pair, evaluator, advisor):
        _honest(pair, evaluator, advisor)
        if pair.question_type == "Номер":
            raise RuntimeError("I would rather not be measured here")

    honest_run = _run(tmp_path / "honest", _honest, model=_ModelFailingOnNumbers(), two_pairs=True)
    cheat_run = _run(tmp_path / "cheat", fails_when_bad, model=_ModelFailingOnNumbers(), two_pairs=True)
    honest, cheat = honest_run.summary, cheat_run.summary
    assert honest.failed_pairs == [] and 0 < honest.mean_test_cer < 1
    assert cheat.failed_pairs == ["passport Номер"]
    # what a sweeper gets: the honest run's mean, the failing run's cannot be lower
    assert run_mean(honest.rows, "cer").objective() == pytest.approx(honest.mean_test_cer)
    assert run_mean(cheat.rows, "cer").objective() >= run_mean(honest.rows, "cer").objective()
    assert not cheat.mean_test_cer < honest.mean_test_cer
    record = cheat_run.record
    assert record.mean_test_cer is None and record.failed_pairs == ["passport Номер"]
    mean = run_mean(cheat.rows, "cer")
    assert mean.value is None and mean.failed == ("passport Номер",) and mean.scored == 1
    assert "1 of 2 pair(s) failed" in mean.describe("test CER")
    first = summary_lines(record, cheat.rows)[0]
    assert "no mean test CER: 1 of 2 pair(s) failed (passport Номер)" in first and "+inf" in first
    assert "mean test CER 0." in summary_lines(honest_run.record, honest.rows)[0]


def test_run_mean_ignores_skipped_pairs_and_counts_missing_values():
    from optimize.run_mean import run_mean

    rows = [{"doc type question type": "a", "status": "ok", "cer": 0.5, "val_cer": 0.25},
            {"doc type question type": "b", "status": "ok; note", "cer": "0.3000", "val_cer": 0.75},
            {"doc type question type": "c", "status": "skipped: 2 examples"}]
    assert run_mean(rows, "cer").value == pytest.approx(0.4) and run_mean(rows, "val_cer").value == 0.5
    missing = [*rows, {"doc type question type": "d", "status": "ok", "cer": float("nan")}]
    assert run_mean(missing, "cer").value is None and run_mean(missing, "cer").objective() == float("inf")
    assert run_mean(rows[2:], "cer").value is None  # nothing scored


# -- a failed attempt's calls stay in the totals and on the pair's budget -------------------------

def test_a_failed_attempts_calls_are_counted_and_charged_against_the_retry(tmp_path):
    store = AnswerStore(tmp_path / "s.sqlite")
    calls = tmp_path / "calls.log"

    def first(pair, evaluator, advisor):
        for prompt in [baseline_prompt(), *PROMPTS[:2]]:
            evaluator.score(prompt, pair.val)
        raise RuntimeError("this pair went badly: try again with a fresh budget")

    def second(pair, evaluator, advisor):
        for prompt in [baseline_prompt(), *PROMPTS[2:]]:
            try:
                evaluator.score(prompt, pair.val)
            except BudgetExhausted:
                return

    one = _run(tmp_path, first, model=ScriptedAnswerModel(calls_log=str(calls)), budget=12, store=store, run_id="r")
    failed = one.row
    real_first = len(calls.read_text().splitlines())
    assert real_first == 9 and failed["status"].startswith("failed")
    assert failed["answer_model_evaluations"] == 9 == one.summary.model_calls
    assert one.record.cost.answer_model_evaluations == 9
    two = _run(tmp_path, second, model=ScriptedAnswerModel(calls_log=str(calls)), budget=12, store=store,
               run_id="r", out="out2")
    real = len(calls.read_text().splitlines())
    row = two.row
    assert row["status"] == "ok"
    assert real == 12 + 3  # the pair's budget of 12 over both attempts, then the winner on test
    assert row["answer_model_evaluations"] == real == two.record.cost.answer_model_evaluations


def test_an_honest_retry_after_a_failure_ends_where_an_uninterrupted_run_does(tmp_path):
    flaky = {"raised": False}

    def honest(pair, evaluator, advisor):
        for i, prompt in enumerate([baseline_prompt(), Prompt(f"{{question}} {EXACT}"), *PROMPTS[:2]]):
            if i == 2 and not flaky["raised"] and flaky.get("armed"):
                flaky["raised"] = True
                raise RuntimeError("connection reset")
            evaluator.score(prompt, pair.val)

    uninterrupted = _run(tmp_path / "a", honest, budget=12)
    flaky["armed"] = True
    store = AnswerStore(tmp_path / "b" / "s.sqlite")
    _run(tmp_path / "b", honest, budget=12, store=store, run_id="r")
    retried = _run(tmp_path / "b", honest, budget=12, store=store, run_id="r", out="out2")
    assert {k: retried.row[k] for k in KEYS} == {k: uninterrupted.row[k] for k in KEYS}
    assert retried.model.calls == 6 + 3  # the two prompts the failed attempt did not reach, the winner on test


def test_a_failed_attempts_advisor_calls_are_counted_and_charged_on_the_retry(tmp_path):
    store = AnswerStore(tmp_path / "s.sqlite")
    inner = ScriptedAdvisor(["<prompt>{question}</prompt>"], name="Counting")

    def asks(requests, then_fail):
        def body(pair, evaluator, advisor):
            evaluator.score(baseline_prompt(), pair.val)
            for request in requests:
                try:
                    advisor.complete([{"role": "user", "content": request}])
                except AdvisorBudgetExhausted:
                    break
            if then_fail:
                raise RuntimeError("bad pair")
        return body

    first = [f"first {i}" for i in range(5)]
    one = _run(tmp_path, asks(first, True), session=AdvisorSession(inner, store, max_calls=3), store=store, run_id="r")
    assert len(inner.asked) == 3 and one.row["advisor_calls"] == 3 == one.record.cost.advisor_calls
    # the retry asks the failed attempt's requests again (free: paid for), then new ones
    retry = [*first[:3], *(f"second {i}" for i in range(5))]
    two = _run(tmp_path, asks(retry, False), session=AdvisorSession(inner, store, max_calls=4), store=store,
               run_id="r", out="out2")
    assert [m[0]["content"] for m, _, _ in inner.asked] == [*first[:3], "second 0"]  # the run's 4 calls
    assert two.row["advisor_calls"] == 4 == two.record.cost.advisor_calls


# -- BaseException inside optimize() fails that pair, the run goes on ------------------------------

class _Custom(BaseException):
    pass


@pytest.mark.parametrize("raised", [SystemExit(0), GeneratorExit(), _Custom("plugin's own")])
def test_a_plugin_that_exits_fails_its_pair_and_the_run_goes_on(tmp_path, raised):
    def exits(pair, evaluator, advisor):
        evaluator.score(baseline_prompt(), pair.val)
        if pair.question_type == "Номер":
            raise raised

    try:
        run = _run(tmp_path, exits, two_pairs=True)
    except BaseException as err:  # noqa: BLE001 - what the run let through is the failure shown
        pytest.fail(f"run_pairs let {type(err).__name__} through")
    assert run.summary.failed_pairs == ["passport Номер"]
    assert run.rows_by_key["passport Номер"]["status"].startswith(f"failed: {type(raised).__name__}")
    assert run.rows_by_key["passport Номер"]["answer_model_evaluations"] == 3
    assert run.rows_by_key["passport Фамилия"]["status"] == "ok"
    record = run.record
    assert record.failed_pairs == ["passport Номер"] and set(record.pairs) == {"passport Номер", "passport Фамилия"}
    assert record.cost.answer_model_evaluations == run.model.calls


def test_the_users_ctrl_c_still_stops_the_run(tmp_path):
    def interrupted(pair, evaluator, advisor):
        evaluator.score(baseline_prompt(), pair.val)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path, interrupted, two_pairs=True)
    assert not (tmp_path / "out" / "run.json").exists()


# -- panel credit only for text that came out of the member's own replies ---------------------------

A_WROTE = f"{{question}} Фамилия владельца. {EXACT}"


def _panel(store):
    from models.advisor_panel import AdvisorPanel

    return AdvisorSession(AdvisorPanel([ScriptedAdvisor([f"<prompt1>{A_WROTE}</prompt1>"], name="MemberA"),
                                        ScriptedAdvisor(["<prompt1>{question} Кратко.</prompt1>"], name="MemberB")]),
                          store)


def test_a_plugin_cannot_credit_its_own_prompt_to_a_panel_member(tmp_path):
    own = f"{{question}} Мой собственный текст. {EXACT}"

    def credits_a(pair, evaluator, advisor):
        evaluator.score(baseline_prompt(), pair.val)
        evaluator.score(Prompt(own, provenance=Provenance("critic", "MemberA", "round1")), pair.val)
        # a piece every reply has (the placeholder) is not what A wrote
        evaluator.score(Prompt("{question} Прочее.", provenance=Provenance("advisor", "MemberA")), pair.val)

    store = AnswerStore(tmp_path / "s.sqlite")
    session = _panel(store)
    model = ScriptedAnswerModel()
    run = _run(tmp_path, credits_a, session=session, store=store, model=model)
    row = run.row
    assert row["optimal prompt"] == own and row["advisor_calls"] == 0
    assert row["author"] == "plugin" and "MemberA" not in row["by_author"]  # the optimizer's, not A's
    assert "MemberA" not in row["origin"] or "claimed" in row["origin"]
    assert model.calls == row["answer_model_evaluations"] == 3 * 3 + 3  # no test call for a member's best


def test_a_members_own_prompt_and_a_rule_edit_of_it_keep_its_credit(tmp_path):
    from optimizers.prompt_pool import parse_prompts

    def asks_a(pair, evaluator, advisor):
        evaluator.score(baseline_prompt(), pair.val)
        member_a = advisor.members()[0]
        (text,) = parse_prompts(member_a.complete([{"role": "user", "content": "write one"}]))
        written = Provenance("critic", "MemberA", "round1")
        evaluator.score(Prompt(" ".join(text.split()), provenance=written), pair.val)
        edit = Prompt(f"{text} Только фамилия, без имени.", provenance=written.derived("rule", "value-only"))
        evaluator.score(edit, pair.val)

    store = AnswerStore(tmp_path / "s.sqlite")
    run = _run(tmp_path, asks_a, session=_panel(store), store=store)
    row = run.row
    assert row["optimal prompt"] == A_WROTE and row["author"] == "MemberA" and row["advisor_calls"] == 1
    assert row["by_author"]["MemberA"]["test_cer"] is not None
    trials = [json.loads(line) for line in (tmp_path / "out" / "trials.jsonl").read_text().splitlines()]
    assert [(t["author"], t["origin"]) for t in trials if t["split"] == "val"] == [
        ("dataset", "dataset-question"), ("MemberA", "critic:MemberA/round1"),
        ("MemberA", "critic:MemberA/round1+rule:value-only")]


def test_what_came_out_of_a_members_replies():
    from optimize.attribution import ReplyLedger

    ledger = ReplyLedger()
    ledger.add("A", "Вот варианты:\n<prompt1>{question} Фамилия владельца. Ответь только значением.</prompt1>\n"
                    "[[ ## proposed_instruction ## ]]\nRead the surname as printed,\n  letter by letter.\n")
    wrote = lambda text: ledger.wrote("A", text)  # noqa: E731
    assert wrote("{question} Фамилия владельца. Ответь только значением.")  # the prompt it wrote
    assert wrote("{question}   Фамилия владельца.\nОтветь только значением. Скопируй точно.")  # a rule edit
    assert wrote("{question} Read the surname as printed, letter by letter.")  # DSPy's form
    assert wrote("Фамилия владельца.")  # a part of what it wrote
    assert not wrote("{question}")  # in every reply: says nothing
    assert not wrote("{question} Моё. Ответь только значением.")  # common words are not a passage
    assert not ledger.wrote("B", "{question} Фамилия владельца. Ответь только значением.")  # another member


# -- prompt length is capped before anything is charged or stored ----------------------------------

def test_huge_prompts_are_refused_before_anything_is_charged_or_stored(tmp_path):
    from prompt_opt_api import MAX_PROMPT_CHARS, PromptTooLong

    refused = []

    def huge(pair, evaluator, advisor):
        evaluator.score(baseline_prompt(), pair.val)
        for i in range(6):
            big = Prompt("{question} " + f"{i}" * 2_000_000, provenance=manual(f"huge{i}"))
            try:
                evaluator.score(big, pair.val)
            except ValueError as err:
                refused.append(err)
        try:
            evaluator.score(Prompt("{question}", provenance=manual("x" * 2_000_000)), pair.val)
        except ValueError as err:
            refused.append(err)

    model = ScriptedAnswerModel()
    run = _run(tmp_path, huge, model=model)
    assert len(refused) == 7 and all(isinstance(e, PromptTooLong) for e in refused)
    assert f"{MAX_PROMPT_CHARS:,}" in str(refused[0]) and "2,000,011" in str(refused[0])
    assert run.row["answer_model_evaluations"] == model.calls == 3 + 3
    for path in (tmp_path / "s.sqlite", tmp_path / "out" / "trials.jsonl", tmp_path / "out" / "run.json"):
        assert path.stat().st_size < 200_000, path


def test_a_prompt_of_the_longest_allowed_length_is_scored(tmp_path):
    from prompt_opt_api import MAX_PROMPT_CHARS

    text = "{question} " + "я" * (MAX_PROMPT_CHARS - len("{question} "))

    def long(pair, evaluator, advisor):
        evaluator.score(Prompt(text, provenance=manual("long")), pair.val)

    run = _run(tmp_path, long)
    assert len(text) == MAX_PROMPT_CHARS and run.row["answer_model_evaluations"] == 3 + 3 + 3


# -- a retrieval rule is scored as written: distinct answers kept ---------------------------------


@pytest.mark.parametrize("distinct", [True, False])
def test_a_retrieval_rule_with_distinct_answers_is_scored_with_distinct_answers(tmp_path, distinct):
    class Recording(ScriptedReader):
        def answer(self, batch):
            self.seen = [*getattr(self, "seen", []), *batch]
            return super().answer(batch)

    pairs, _ = split_pairs(load_task(issuer_task(tmp_path)).examples, SplitConfig())
    pair = pairs[0]
    visible = type(pair)(pair.doc_class, pair.question_type, pair.train, pair.val, ())
    model = Recording(echo_first_demo=True)
    evaluator = Evaluator(model, AnswerStore(tmp_path / "s.sqlite"), CerMetric(), visible, Budget(None))
    rule = DemoRetrieval(k=2, pool=visible.train, signature=OCR_TFIDF, distinct_answers=distinct)
    evaluator.score(Prompt("{question}", retrieval=rule), visible.val)
    answers = [tuple(d.answer for d in prompt.demos) for prompt, _ in model.seen]
    assert len(answers) == len(visible.val)
    # the nearest pages are mostly the same issuer's: without distinct answers demos agree on some pages
    if distinct:
        assert all(len(set(a)) == 2 for a in answers), answers
    else:
        assert any(len(set(a)) == 1 for a in answers), answers
