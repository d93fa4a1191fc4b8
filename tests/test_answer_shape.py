"""Answer shapes: a reply trimmed to the shape of the pair's train answers (``Prompt.answer_shapes``)
is a candidate of its own, chosen on val for free (the same request, the same cached answers),
carried whole through prompt books, and refused in a book when its shapes are not shapes."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
from pathlib import Path

import pytest

from optimize.answer_store import AnswerStore
from optimize.evaluator import Budget, Evaluator, answer_cache_key
from optimize.run_record import TrialRecord
from optimize.selection import pick_best
from optimize.trial_log import demo_rows
from optimizers.answer_shape_step import AnswerShapeStep
from optimizers.chain import ChainOptimizer
from optimizers.manual import ManualOptimizer
from prompt_opt_api import Example, Pair, Prompt
from prompt_opt_api.answer_shape import AnswerShapes, shape
from prompt_opt_api.prompt_book import PromptBookError, load_book
from tasks.cer_metric import CerMetric
from tests.book_helpers import applied_test_cers, apply_book, cers_without, write_book
from tests.cli_helpers import run_cli
from tests.scripted_answer_model import ScriptedAnswerModel, ScriptedSuffixModel
from tests.task_factory import draw_image, write_csv
from tests.test_demo_cut import KEYS_BEFORE, MODEL, _book, _example

ASKED = "What is it?"  # every question here; a scripted model with it as its exact marker answers every prompt exactly


# -- the definition --------------------------------------------------------------------------------
def test_a_shape_classes_characters_and_collapses_runs_after_the_metrics_stripping():
    texts = ("25/12/2018", "RM 12.00", "15 JUN 18", "«25/12/2018».", "Иванов-Петров", "")
    assert [shape(t) for t in texts] == ["9/9/9", "A 9.9", "9 A 9", "9/9/9", "A-A", ""]
    shapes = AnswerShapes.from_answers(["01/02/2019", "25/12/2018", "", "03/04/2020"])
    assert shapes.shapes == ("9/9/9",)  # sorted, distinct, none for an empty answer


def test_the_trim_keeps_the_longest_piece_of_a_train_answers_shape_and_else_the_reply():
    dates = AnswerShapes.from_answers(["25/12/2018"])
    assert dates.trim("25/12/2018 8:13:39 PM") == "25/12/2018"
    assert dates.trim("78/02/18 08: 28 10886 09") == "78/02/18"
    assert dates.trim("Date: 25/12/2018.") == "25/12/2018"
    for unchanged in ("25/12/2018", " 25/12/2018.", "", "no date here"):  # its shape, empty, or no piece
        assert dates.trim(unchanged) == unchanged
    totals = AnswerShapes.from_answers(["12.00", "RM 3.50"])
    assert totals.trim("Total: RM 12.00 cash") == "RM 12.00"  # the longest piece, not the first
    assert AnswerShapes.from_answers(["7"]).trim("(12) x 345") == "345"  # the longest, surrounding stripped
    assert AnswerShapes().trim("25/12/2018 8:13") == "25/12/2018 8:13"  # no shapes: replies as given


# -- the step, with a scripted model that reads pixels ---------------------------------------------
def _ex(i: int, answer: str, qtype: str) -> Example:
    return Example(image=Path(f"/nowhere/{qtype}{i}.png"), question=ASKED, answer=answer, doc_class="receipt",
                   question_type=qtype, bbox=None, image_sha256=f"{qtype}{i}".ljust(64, "0"), source_row=f"row {i}")


def _pair(qtype: str, train: list[str], val: list[str]) -> Pair:
    return Pair("receipt", qtype, tuple(_ex(i, a, qtype) for i, a in enumerate(train)),
                tuple(_ex(100 + i, a, qtype) for i, a in enumerate(val)), ())


DATES = _pair("date", ["25/12/2018", "01/02/2019", "13/07/2018"], ["26/02/2018", "05/11/2019", "30/01/2020"])
# company names: train names of two words, val names of three; a short reply keeps three words
COMPANIES = _pair("company", ["ALPHA TRADING", "BETA MARKET"], ["GAMMA FOOD STORE", "DELTA BOOK SHOP"])


def _chain(model, pair, tmp_path, candidates=(), budget=None):
    """The chain ``manual, answer_shape`` on ``pair``: its trials, the evaluator, and the records as the run loop
    keeps them (each score with its plain prompt), so the engine's pick can be asked."""
    records = []

    def listen(prompt, split, score):
        records.append(TrialRecord(prompt, {"split": split, "n": score.n, "cer": score.cer, "prompt": prompt.text,
                                            "demo_rows": demo_rows(prompt)}))

    evaluator = Evaluator(model, AnswerStore(tmp_path / "s.sqlite"), CerMetric(), pair, Budget(budget), listener=listen)
    chain = ChainOptimizer({"s1": ManualOptimizer(candidates=candidates), "s2": AnswerShapeStep()})
    return chain.optimize(pair, evaluator, None), evaluator, records


def test_a_reader_that_adds_a_time_to_every_date_gets_its_replies_trimmed_on_val(tmp_path):
    trials, _, records = _chain(ScriptedSuffixModel(exact_marker=ASKED), DATES, tmp_path)
    trimmed = [t for t in trials if t.prompt.answer_shapes is not None]
    assert [(t.prompt.text, t.prompt.answer_shapes, t.score.cer) for t in trimmed] == [
        ("{question}", AnswerShapes(("9/9/9",)), 0.0), ("{question}", AnswerShapes(max_chars=10), 0.0),
        ("{question}", AnswerShapes(("9/9/9",), 10), 0.0)]  # shapes, length, both: a tie goes to the shapes
    first = trimmed[0].score.results[0]
    assert (first.prediction, first.raw_prediction) == ("26/02/2018", "26/02/2018 20:13:39")
    winner, _ = pick_best(records, len(DATES.val))
    assert winner.answer_shapes == AnswerShapes(("9/9/9",))
    assert winner.provenance.label == "dataset-question+rule:answer-shapes"


def test_a_reader_that_answers_exactly_gets_no_shapes_and_keeps_its_winner(tmp_path):
    trials, _, records = _chain(ScriptedSuffixModel(suffix="", exact_marker=ASKED), DATES, tmp_path)
    assert all(t.prompt.answer_shapes is None for t in trials)  # perfect on val: nothing to trim
    winner, _ = pick_best(records, len(DATES.val))
    assert (winner.text, winner.answer_shapes) == ("{question}", None)
    # not perfect, but every reply has the train answers' shape: a tie, and the untrimmed prompt keeps it
    trials, _, records = _chain(ScriptedAnswerModel(), DATES, tmp_path / "short")
    (plain, shaped, *cut) = [t for t in trials if t.optimizer == "answer_shape"]
    assert shaped.prompt.answer_shapes is not None and shaped.score.cer == plain.score.cer > 0
    assert [t.score.cer for t in cut] == [plain.score.cer] * 2  # no reply over the longest train answer: no cut
    winner, _ = pick_best(records, len(DATES.val))
    assert winner.text == "{question}" and winner.answer_shapes is None


def test_a_pair_whose_trim_hurts_on_val_keeps_its_replies_whole(tmp_path):
    trials, _, records = _chain(ScriptedAnswerModel(), COMPANIES, tmp_path)
    (plain, shaped, length, both) = [t for t in trials if t.optimizer == "answer_shape"]
    assert shaped.score.results[0].prediction == "GAMMA FOOD"  # "GAMMA FOOD STOR" cut to two words
    assert length.score.results[0].prediction == "GAMMA FOOD ST"  # cut to 13 characters, "ALPHA TRADING"
    assert min(shaped.score.cer, length.score.cer, both.score.cer) > plain.score.cer
    winner, _ = pick_best(records, len(COMPANIES.val))
    assert winner.answer_shapes is None


def test_the_trimmed_candidate_costs_no_model_call_and_no_budget_when_its_prompt_was_scored(tmp_path):
    model = ScriptedSuffixModel(exact_marker=ASKED)
    evaluator = Evaluator(model, AnswerStore(tmp_path / "s.sqlite"), CerMetric(), DATES, Budget(100))
    (best,) = ManualOptimizer().optimize(DATES, evaluator, None)
    assert model.calls == evaluator.budget.used == len(DATES.val)
    calls, used = model.calls, evaluator.budget.used
    trials = AnswerShapeStep().starting_from([best.prompt]).optimize(DATES, evaluator, None)
    assert [t.prompt.answer_shapes for t in trials] == [None, AnswerShapes(("9/9/9",)), AnswerShapes(max_chars=10),
                                                         AnswerShapes(("9/9/9",), 10)]
    assert [t.score.cer for t in trials[1:]] == [0.0] * 3
    assert (model.calls, evaluator.budget.used) == (calls, used)


def test_bad_shapes_are_refused_before_anything_is_charged(tmp_path):
    model = ScriptedSuffixModel()
    evaluator = Evaluator(model, AnswerStore(tmp_path / "s.sqlite"), CerMetric(), DATES, Budget(None))
    with pytest.raises(ValueError, match=r"Prompt.answer_shapes: shape 1 holds 'x'"):
        evaluator.score(Prompt("{question}", answer_shapes=AnswerShapes(("9/x",))), DATES.val)
    assert model.calls == 0 and evaluator.budget.used == 0


# -- keys and books ---------------------------------------------------------------------------------
def test_shapes_leave_answer_keys_alone_and_books_without_them_byte_identical():
    for name, (before, prompt) in KEYS_BEFORE.items():
        shaped = dataclasses.replace(prompt, answer_shapes=AnswerShapes(("9/9/9",)))
        assert answer_cache_key(MODEL, shaped, _example(3, "GAMMA")) == before, name  # the same request
    assert hashlib.sha256(_book().dumps().encode()).hexdigest() == (
        "2e7359fbdfd895d8a577b10d7862209562e83f4231eb460a040a4223cd1487a0")
    assert "answer_shapes" not in _book().dumps() and _book(200).to_json()["schema_version"] == 5
    shaped = dataclasses.replace(_book(200), schema_version=0, entries=(  # built in memory: the version it writes
        _book().entries[0], dataclasses.replace(_book(200).entries[1], answer_shapes=("9/9/9", "9.9"))))
    data = shaped.to_json()
    assert shaped.schema_version == data["schema_version"] == 6
    assert data["pairs"][1]["answer_shapes"] == ["9/9/9", "9.9"]
    assert shaped.entries[1].demos_text().endswith("; replies trimmed to the train answers' shapes (2 shapes)")


@pytest.mark.parametrize("field, value", [("answer_shapes", ("9",)), ("answer_max_chars", 9)])
def test_a_version_5_book_holding_a_trim_is_refused_naming_the_file_and_pair(tmp_path, field, value):
    data = dataclasses.replace(_book(), entries=(dataclasses.replace(_book().entries[0], **{field: value}),),
                               schema_version=0).to_json()
    data["schema_version"] = 5
    path = write_book(tmp_path / "old.book.json", data)
    with pytest.raises(PromptBookError) as err:
        load_book(path)
    assert str(err.value) == (f"{path}, entry 1 ('receipt company'): \"{field}\" needs schema_version 6 "
                              "(the book says 5)")


# -- a shaped winner through the CLI, its book, apply and the runtime --------------------------------
def receipt_task(root: Path, question: str, field: str, answers: list[str]) -> Path:
    """One receipt field, one page an answer."""
    rows = []
    for i, answer in enumerate(answers):
        draw_image(root / f"images/{i}.png", f"{i}")
        rows.append([f"images/{i}.png", question, answer, "receipt", field, ""])
    return write_csv(root / "task.csv", rows)


def date_task(root: Path, n: int = 14) -> Path:
    return receipt_task(root, "What is the date?", "date", [f"{i + 1:02d}/{i % 12 + 1:02d}/2018" for i in range(n)])


def suffix_run(factory, name: str, data_of, field: str):
    """A run (manual, then the answer-shape step) with a reader that adds a time after every answer."""
    root = factory.mktemp(name)
    data = data_of(root / "data")
    proc = run_cli(root, data, "optimizer=manual_shapes", f"model.exact_marker={field}", model="scripted_suffix")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root, data, root / "out" / "Scripted-Suffix_sep_none.book.json"


@pytest.fixture(scope="module")
def shaped_run(tmp_path_factory):
    return suffix_run(tmp_path_factory, "shaped_run", date_task, "date")


def test_a_shaped_winner_round_trips_through_the_book_with_exact_parity(shaped_run, tmp_path):
    root, data, book_path = shaped_run
    book = load_book(book_path)
    (entry,) = book.entries
    assert book.schema_version == 6
    assert (entry.template, entry.answer_shapes, entry.test_cer) == ("{question}", ("9/9/9",), 0.0)
    with (root / "out" / "Scripted-Suffix_sep_none.csv").open(encoding="utf-8") as fh:
        (row,) = csv.DictReader(fh)
    assert (float(row["cer"]), row["demos"]) == (0.0, "replies trimmed to the train answers' shapes (1 shape)")
    assert applied_test_cers(book_path, data, tmp_path / "applied.csv") == [0.0]
    # the shapes are what made it: the same book without them scores the replies with their times
    assert cers_without(book_path, "answer_shapes", data, tmp_path)[0] > 0.5


def test_the_runtime_answers_what_the_evaluator_scored(shaped_run):
    from models.prompt_runtime import PromptRuntime

    root, _, book_path = shaped_run
    records = [json.loads(line) for line in (root / "out" / "trials.jsonl").read_text(encoding="utf-8").splitlines()]
    (test,) = [r for r in records if r["split"] == "test"]
    runtime = PromptRuntime(book_path, allow=("tests.",))
    assert all(p["raw_prediction"].endswith(" 20:13:39") for p in test["predictions"])
    assert [runtime.answer("receipt", "date", p["raw_prediction"]) for p in test["predictions"]] == [
        p["prediction"] for p in test["predictions"]]
    assert runtime.answer("receipt", "date", " 01/02/2018 20:13:39\n") == "01/02/2018"


def test_the_run_record_and_report_say_the_winners_replies_are_trimmed(shaped_run):
    root, _, _ = shaped_run
    run = json.loads((root / "out" / "run.json").read_text(encoding="utf-8"))
    (digest,) = run["pairs"].values()
    assert digest["winner"]["answer_shapes"] == ["9/9/9"]
    assert digest["error_classes"]["val"]["wrong"] == 0  # the trimmed candidate's val answers, not the untrimmed
    assert [c.get("answer_shapes") for c in digest["top"]][:1] == [["9/9/9"]]
    report = (root / "out" / "report.html").read_text(encoding="utf-8")
    assert "Replies trimmed to the train answers&#x27; shapes (1 shape): &#x27;9/9/9&#x27;." in report


@pytest.mark.parametrize("shapes, says", [
    (["9/x"], "shape 1 holds 'x': a shape writes a digit as 9, a letter as A and white space as one space ('9/x')"),
    ([f"9{'/9' * i}" for i in range(65)], "must list 1 to 64 shapes, got 65"),
    (["9 " * 100 + "9"], "shape 1 must be 1 to 200 characters, got 201"),
])
def test_a_book_with_bad_shapes_exits_2_in_one_line_before_any_model(shaped_run, tmp_path, shapes, says):
    assert_refused_in_one_line(shaped_run, tmp_path, "answer_shapes", shapes,
                               f"('receipt date'): \"answer_shapes\" {says}")


def assert_refused_in_one_line(run, tmp_path, key, value, says):
    """The run's book with its entry's ``key`` set to ``value``: apply exits 2 with one line ending in ``says``,
    before any model, writing nothing."""
    _, data, book_path = run
    bad = json.loads(book_path.read_text(encoding="utf-8"))
    bad["pairs"][0][key] = value
    path = write_book(tmp_path / "bad.book.json", bad)
    out = tmp_path / "b.csv"
    proc = apply_book(path, data, "--out", out)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"{path}, entry 1 {says}"]
    assert not out.exists()


def test_the_default_optimizer_ends_with_the_answer_shape_step():
    from tests.test_configs_and_contracts import _compose
    from hydra.utils import instantiate

    quick = instantiate(_compose(["optimizer=quick"]).optimizer)
    assert [type(step).__name__ for step in quick.steps][-1] == "AnswerShapeStep"
    assert quick.budget_shares == [0.6]  # the critic's share; the demos and the shapes spend what is left


# -- a prompt with shapes is a candidate of its own, and what is built from it keeps them -----------
SHAPED = Prompt("{question}", answer_shapes=AnswerShapes(("9/9/9",)))


def test_a_prompt_with_shapes_and_one_without_are_two_candidates():
    from optimize.selection import baseline_scored
    from optimizers.prompt_pool import PromptPool
    from optimizers.retrieval import RetrievalOptimizer

    plain = Prompt("{question}")
    assert PromptPool.key(plain) != PromptPool.key(SHAPED) and demo_rows(plain) != demo_rows(SHAPED)
    assert SHAPED in RetrievalOptimizer().starting_from([SHAPED]).known_prompts(DATES)  # beside the baseline
    record = {"split": "val", "n": 3, "cer": 0.0, "prompt": "{question}", "n_demos": 0}
    shaped = TrialRecord(SHAPED, {**record, "demo_rows": demo_rows(SHAPED), "answer_shapes": ["9/9/9"]})
    assert not baseline_scored([shaped], 3)  # the engine still scores the replies as given
    assert baseline_scored([shaped, TrialRecord(plain, {**record, "demo_rows": []})], 3)


def test_prompts_built_from_a_prompt_with_shapes_keep_them(tmp_path):
    from optimizers.fewshot import FewShotOptimizer
    from optimizers.prompt_edits import rule_edits

    assert {p.answer_shapes for p in rule_edits(SHAPED, DATES.train)} == {SHAPED.answer_shapes}
    # the trimmed prompt is the best instruction: the suffix model's replies, cut to their dates, score better
    evaluator = Evaluator(ScriptedSuffixModel(), AnswerStore(tmp_path / "s.sqlite"), CerMetric(), DATES, Budget(None))
    trials = FewShotOptimizer(k=1, random_sets=1, copy_guard=False).starting_from([SHAPED]).optimize(
        DATES, evaluator, None)
    with_demos = [t.prompt for t in trials if t.prompt.demos]
    assert with_demos and all(p.answer_shapes == SHAPED.answer_shapes for p in with_demos)


def test_retrieval_rules_built_on_a_trimmed_instruction_keep_its_shapes(tmp_path):
    from optimizers.retrieval import RetrievalOptimizer
    from tasks.docqa_csv import load_task
    from tasks.pair_splits import SplitConfig, split_pairs
    from tests.task_factory import issuer_task

    (pair,), _ = split_pairs(load_task(issuer_task(tmp_path / "data")).examples, SplitConfig())
    visible = dataclasses.replace(pair, test=())
    shaped = Prompt("{question}", answer_shapes=AnswerShapes.from_answers(e.answer for e in visible.train))
    evaluator = Evaluator(ScriptedSuffixModel(), AnswerStore(tmp_path / "s.sqlite"), CerMetric(), visible, Budget(None))
    trials = RetrievalOptimizer(ks=(1,), signatures=("page-gray16/v1",), distinct_answers=False, copy_guard=False,
                                stop_when_beaten=False).starting_from([shaped]).optimize(visible, evaluator, None)
    rules = [t.prompt for t in trials if t.prompt.retrieval is not None]
    assert rules and all(p.answer_shapes == shaped.answer_shapes for p in rules)


# -- a plugin's shapes come from train, as its demos do -----------------------------------------------
# train dates written with slashes, val dates with dots: the val answers' shapes trim the reader's
# replies to a perfect val score, the train answers' shapes do not
DOTTED = _pair("date", ["25/12/2018", "01/02/2019", "13/07/2018"], ["26.02.2018", "05.11.2019", "30.01.2020"])


def test_a_plugin_cannot_trim_to_shapes_its_train_answers_do_not_have(tmp_path):
    from prompt_opt_api import HeldOutAccessError

    model = ScriptedSuffixModel(exact_marker=ASKED)
    evaluator = Evaluator(model, AnswerStore(tmp_path / "s.sqlite"), CerMetric(), DOTTED, Budget(None))
    from_val = AnswerShapes.from_answers(ex.answer for ex in DOTTED.val)
    with pytest.raises(HeldOutAccessError, match=r"Prompt.answer_shapes: '9\.9\.9' is not the shape of a train answer"):
        evaluator.score(Prompt("{question}", answer_shapes=from_val), DOTTED.val)
    mixed = AnswerShapes(from_val.shapes + ("9/9/9",))  # one train shape does not carry the others
    with pytest.raises(HeldOutAccessError):
        evaluator.score(Prompt("{question}", answer_shapes=mixed), DOTTED.val)
    assert model.calls == 0 and evaluator.budget.used == 0  # refused before anything is charged


def test_train_shapes_and_a_subset_of_them_are_scored_as_the_step_scores_them(tmp_path):
    pair = _pair("total", ["12.00", "RM 3.50", "7"], ["9.90", "RM 1.00"])
    evaluator = Evaluator(ScriptedSuffixModel(exact_marker=ASKED), AnswerStore(tmp_path / "s.sqlite"), CerMetric(),
                          pair, Budget(None))
    train = AnswerShapes.from_answers(ex.answer for ex in pair.train)
    assert evaluator.score(Prompt("{question}", answer_shapes=train), pair.val).cer == 0.0
    subset = AnswerShapes(("9.9",))  # a plugin may keep the train shapes that help: still train's
    assert [r.prediction for r in evaluator.score(Prompt("{question}", answer_shapes=subset), pair.val).results] == [
        "9.90", "1.00"]
    # the engine's own scorers (the winner on test, a book applied to other data) take the shapes as given
    engine = Evaluator(ScriptedSuffixModel(exact_marker=ASKED), AnswerStore(tmp_path / "e.sqlite"), CerMetric(),
                       DOTTED, Budget(None), allow_test=True)
    from_val = AnswerShapes.from_answers(ex.answer for ex in DOTTED.val)
    assert engine.score(Prompt("{question}", answer_shapes=from_val), DOTTED.val).cer == 0.0


# -- the length cut: a reply cut to the longest train answer's length ---------------------------------
def test_the_length_cut_keeps_a_replys_first_characters_after_the_shape_trim():
    cut = AnswerShapes(max_chars=5)
    assert cut.trim("«ABCDEFG».") == "ABCDE"  # stripped, then cut
    assert AnswerShapes(max_chars=3).trim("AB, CD") == "AB"  # "AB," stripped again
    for unchanged in (" 25/12. ", "ABCDE", ""):  # no longer than 5 once stripped: as given
        assert cut.trim(unchanged) == unchanged
    assert AnswerShapes(("9/9/9",), 8).trim("25/12/2018 8:13") == "25/12/20"  # the shape trim first
    answers = ["25/12/2018", "1/2/19", ""]
    assert AnswerShapes.from_answers(answers, length=True) == AnswerShapes(("9/9/9",), 10)
    assert AnswerShapes.from_answers(answers, shapes=False, length=True) == AnswerShapes(max_chars=10)
    assert AnswerShapes.from_answers(["", ""], shapes=False, length=True).max_chars is None
    assert AnswerShapes(("9/9/9",)).identity() == {"shapes": ["9/9/9"], "trim": "train-answer-shapes/v1"}
    assert AnswerShapes(max_chars=10).identity() == {"shapes": [], "trim": "train-answer-shapes/v1", "max_chars": 10}
    assert AnswerShapes().problem() == "holds neither shapes nor a length cut"
    assert AnswerShapes(max_chars=0).problem() == "max_chars must be an integer from 1 to 10000, got 0"
    assert AnswerShapes(max_chars=True).problem() == "max_chars must be an integer from 1 to 10000, not true"
    assert AnswerShapes(max_chars=10).problem() is None


RUN_ON = " TEL 03-2141 5566 GST 001234"  # the lines after an address, as a reader copies them


class RunOnReader(ScriptedAnswerModel):
    """Reads pixels; answers ``ScriptedAnswerModel``'s answer, and on the pages named in ``run_on``
    runs on with the lines after it (``RUN_ON``)."""

    name = "Scripted-RunOn"

    def __init__(self, run_on: frozenset[str] = frozenset(), **settings) -> None:
        super().__init__(**settings)
        self.run_on = run_on

    def _one(self, prompt: Prompt, example: Example) -> str:
        return super()._one(prompt, example) + (RUN_ON if example.image.name in self.run_on else "")


# train addresses of 18, 17 and 19 characters, each with a punctuation of its own: no piece of a
# val or test reply has a train answer's shape, so the shape trim leaves every reply whole
ADDRESSES = dataclasses.replace(
    _pair("address", ["NO 5 JALAN#MAWAR 2", "LOT 12 JALAN&BATU", "88 TAMAN~SERI INDAH"],
          ["21 JALAN^KUCHAI 3", "9 LORONG|RIA 4A", "7 TAMAN@PUTRA"]),
    test=(_ex(200, "3 JALAN=DUTA 5", "address"), _ex(201, "LOT 8 TAMAN%JAYA", "address")))


def test_a_reader_that_runs_on_after_the_address_gets_its_replies_cut_to_the_longest_train_answer(tmp_path):
    model = RunOnReader(frozenset({"address100.png", "address101.png", "address200.png"}), exact_marker=ASKED)
    trials, _, records = _chain(model, ADDRESSES, tmp_path)
    (plain, shaped, length, both) = [t for t in trials if t.optimizer == "answer_shape"]
    assert shaped.score.cer == plain.score.cer > 0  # no piece has a train answer's shape
    assert [r.prediction for r in length.score.results] == ["21 JALAN^KUCHAI 3 T", "9 LORONG|RIA 4A TEL",
                                                            "7 TAMAN@PUTRA"]
    assert length.score.cer < plain.score.cer and both.score.cer == length.score.cer
    winner, _ = pick_best(records, len(ADDRESSES.val))
    assert winner.answer_shapes == AnswerShapes(max_chars=19)  # the longest train answer; the tie goes to it
    assert winner.provenance.label == "dataset-question+rule:answer-length"
    engine = Evaluator(model, AnswerStore(tmp_path / "s.sqlite"), CerMetric(), ADDRESSES, Budget(None),
                       allow_test=True)
    test = engine.score(winner, ADDRESSES.test)
    assert [(r.raw_prediction, r.prediction) for r in test.results] == [
        ("3 JALAN=DUTA 5" + RUN_ON, "3 JALAN=DUTA 5 TEL"), ("", "LOT 8 TAMAN%JAYA")]
    assert test.cer == pytest.approx(CerMetric().cer("3 JALAN=DUTA 5", "3 JALAN=DUTA 5 TEL") / 2)


def test_a_reader_whose_long_answers_are_right_and_within_the_length_gets_no_cut(tmp_path):
    # every reply right but one a character short, one val answer as long as the longest train answer
    # and one longer: the cut changes no reply within 19 characters and hurts the longer one, so it never wins
    pair = dataclasses.replace(ADDRESSES, val=ADDRESSES.val + (_ex(103, "LOT 3 JALAN*RAJA 7B", "address"),
                                                               _ex(104, "12 JALAN*SULTAN ISMAIL 5", "address")))
    short = {"address102.png"}

    class OneShort(RunOnReader):
        def _one(self, prompt, example):
            answer = super()._one(prompt, example)
            return answer[:-1] if example.image.name in short else answer

    trials, _, records = _chain(OneShort(exact_marker=ASKED), pair, tmp_path)
    (plain, shaped, length, both) = [t for t in trials if t.optimizer == "answer_shape"]
    assert [r.prediction for r in length.score.results][:4] == [r.prediction for r in plain.score.results][:4]
    assert length.score.results[4].prediction == "12 JALAN*SULTAN ISM"
    assert length.score.cer > plain.score.cer and both.score.cer > plain.score.cer
    winner, _ = pick_best(records, len(pair.val))
    assert (winner.text, winner.answer_shapes) == ("{question}", None)


def test_a_plugin_cannot_cut_its_replies_to_a_length_other_than_the_longest_train_answer(tmp_path):
    from prompt_opt_api import HeldOutAccessError

    model = RunOnReader(frozenset({"address100.png"}), exact_marker=ASKED)
    evaluator = Evaluator(model, AnswerStore(tmp_path / "s.sqlite"), CerMetric(), ADDRESSES, Budget(None))
    longest_val = max(len(ex.answer) for ex in ADDRESSES.val)  # 17: a perfect val score, fitted to val
    for max_chars in (longest_val, 20):
        with pytest.raises(HeldOutAccessError, match=rf"Prompt.answer_shapes: max_chars {max_chars} is not the length "
                                                     r"of this pair's longest train answer \(19\)"):
            evaluator.score(Prompt("{question}", answer_shapes=AnswerShapes(max_chars=max_chars)), ADDRESSES.val)
    with pytest.raises(HeldOutAccessError):  # train shapes do not carry a cut of their own
        evaluator.score(Prompt("{question}", answer_shapes=AnswerShapes(("A 9 A&A",), 17)), ADDRESSES.val)
    assert model.calls == 0 and evaluator.budget.used == 0  # refused before anything is charged
    # the train answers' longest is scored; the engine's own scorers take a cut as given
    assert evaluator.score(Prompt("{question}", answer_shapes=AnswerShapes(max_chars=19)), ADDRESSES.val).cer > 0
    engine = Evaluator(model, AnswerStore(tmp_path / "e.sqlite"), CerMetric(), ADDRESSES, Budget(None),
                       allow_test=True)
    assert engine.score(Prompt("{question}", answer_shapes=AnswerShapes(max_chars=17)), ADDRESSES.val).cer == 0.0


def test_a_length_cut_is_a_candidate_of_its_own_and_a_schema_6_book_entry():
    from optimize.selection import baseline_scored
    from optimizers.prompt_pool import PromptPool

    cut, both = Prompt("{question}", answer_shapes=AnswerShapes(max_chars=19)), dataclasses.replace(
        SHAPED, answer_shapes=AnswerShapes(("9/9/9",), 19))
    assert len({PromptPool.key(p) for p in (Prompt("{question}"), SHAPED, cut, both)}) == 4
    assert len({tuple(demo_rows(p)) for p in (Prompt("{question}"), SHAPED, cut, both)}) == 4
    record = {"split": "val", "n": 3, "cer": 0.0, "prompt": "{question}", "n_demos": 0}
    assert not baseline_scored([TrialRecord(cut, {**record, "demo_rows": demo_rows(cut), "answer_max_chars": 19})], 3)
    book = dataclasses.replace(_book(200), schema_version=0, entries=(
        _book().entries[0], dataclasses.replace(_book(200).entries[1], answer_max_chars=96)))
    data = book.to_json()
    assert data["schema_version"] == 6 and data["pairs"][1]["answer_max_chars"] == 96
    assert "answer_max_chars" not in data["pairs"][0] and "answer_shapes" not in data["pairs"][1]
    assert book.entries[1].demos_text().endswith("; replies cut to 96 characters, the longest train answer")
    shaped = dataclasses.replace(book.entries[1], answer_shapes=("9/9/9", "9.9", "A"))
    assert shaped.demos_text().endswith("; replies trimmed to the train answers' shapes (3 shapes) and cut to 96 "
                                        "characters")


# -- a cut winner through the CLI, its book, apply and the runtime -----------------------------------
PUNCTUATION = "#&~^|@+=/%$-<>"  # one a row: no reply has another row's shape, so only the cut helps


def address_task(root: Path) -> Path:
    return receipt_task(root, "What is the address?", "address",
                        [f"{i:02d} JALAN{mark}BATU" for i, mark in enumerate(PUNCTUATION)])


@pytest.fixture(scope="module")
def cut_run(tmp_path_factory):
    return suffix_run(tmp_path_factory, "cut_run", address_task, "address")


def test_a_cut_winner_round_trips_through_the_book_with_exact_parity(cut_run, tmp_path):
    from models.prompt_runtime import PromptRuntime

    root, data, book_path = cut_run
    (entry,) = load_book(book_path).entries
    assert (entry.template, entry.answer_shapes, entry.answer_max_chars, entry.test_cer) == (
        "{question}", None, 13, 0.0)
    with (root / "out" / "Scripted-Suffix_sep_none.csv").open(encoding="utf-8") as fh:
        (row,) = csv.DictReader(fh)
    assert row["demos"] == "replies cut to 13 characters, the longest train answer"
    assert applied_test_cers(book_path, data, tmp_path / "applied.csv") == [0.0]
    assert cers_without(book_path, "answer_max_chars", data, tmp_path)[0] > 0.3  # the cut is what made it
    records = [json.loads(line) for line in (root / "out" / "trials.jsonl").read_text(encoding="utf-8").splitlines()]
    (test,) = [r for r in records if r["split"] == "test"]
    runtime = PromptRuntime(book_path, allow=("tests.",))
    assert all(p["raw_prediction"].endswith(" 20:13:39") for p in test["predictions"])
    assert [runtime.answer("receipt", "address", p["raw_prediction"]) for p in test["predictions"]] == [
        p["prediction"] for p in test["predictions"]]
    report = (root / "out" / "report.html").read_text(encoding="utf-8")
    assert "Replies cut to 13 characters, the longest train answer." in report


@pytest.mark.parametrize("value, says", [(0, "got 0"), (True, "not true"), (10001, "got 10001"), ("96", 'not "96"')])
def test_a_book_with_a_bad_length_cut_exits_2_in_one_line_before_any_model(cut_run, tmp_path, value, says):
    assert_refused_in_one_line(cut_run, tmp_path, "answer_max_chars", value,
                               f"('receipt address'): \"answer_max_chars\" must be an integer from 1 to 10000, {says}")
