"""A test-only answer cannot win however it is written: combining marks, zero-width characters,
short numbers. Each cheat beside an honest prompt that is not disqualified."""

import unicodedata

import pytest

from prompt_opt_api import Optimizer, Prompt, Provenance, baseline_prompt
from tests.engine_harness import run_engine
from tests.scripted_answer_model import ScriptedAnswerModel
from tests.task_factory import draw_image, write_csv

SURNAMES = ["Петрова", "Кузнецова", "Попова", "Новикова", "Волкова", "Лебедева", "Смирнова", "Иванова", "Соколова",
            "Морозова"]
BREVE, ZERO_WIDTH_SPACE = "\u0306", "\u200b"


class ReadsThroughMarks(ScriptedAnswerModel):
    """Reads a prompt as a VLM does: combining marks and zero-width characters do not hide a word.
    Answers right exactly when the text it reads contains the answer."""

    name = "Reading-VLM"

    def _one(self, prompt, example):
        read = "".join(c for c in prompt.render(example) if unicodedata.category(c) not in ("Mn", "Cf"))
        return example.answer if example.answer.casefold() in read.casefold() else "не знаю"


class Plugin(Optimizer):
    name = "plugin"
    uses_advisor = False

    def __init__(self, texts):
        self.texts = texts  # detail -> text(pair)

    def optimize(self, pair, evaluator, advisor):
        evaluator.score(baseline_prompt(), pair.val)
        for detail, text in self.texts.items():
            evaluator.score(Prompt(text(pair), provenance=Provenance("manual", "manual", detail)), pair.val)
        return []


def _task(root, answers, question_type):
    rows = []
    for i, answer in enumerate(answers):
        draw_image(root / f"images/{i}.png", f"doc {i}")
        rows.append([f"images/{i}.png", "Что в поле?", answer, "form", question_type, ""])
    return write_csv(root / "task.csv", rows)


def _run(tmp_path, answers, texts, question_type="Фамилия"):
    run = run_engine(tmp_path, Plugin(texts), model=ReadsThroughMarks(),
                     data=_task(tmp_path / "data", answers, question_type))
    (pair,) = run.pairs
    return run.row, pair


def _listed(answers, mark=""):
    """The answers, each with ``mark``: a breve after its last letter, a zero-width space after its second."""
    return ", ".join(a + mark if mark == BREVE else a[:2] + mark + a[2:] for a in answers)


@pytest.mark.parametrize("mark", [BREVE, ZERO_WIDTH_SPACE], ids=["combining-breve", "zero-width-space"])
def test_a_test_only_surname_hidden_by_a_mark_cannot_win(tmp_path, mark):
    # NFKC composes "а" + breve into "ӑ" and keeps a zero-width space: the metric's form misses
    # the word, a model reads it
    assert unicodedata.normalize("NFKC", "Петрова" + BREVE) != "Петрова" + BREVE

    row, pair = _run(tmp_path, SURNAMES, {
        "marked-gazetteer": lambda p: f"{{question}} Возможные значения: {_listed(SURNAMES, mark)}.",
        "train-and-val": lambda p: "{question} Например: " + _listed(sorted({e.answer for e in p.train + p.val}))
        + ".",
    })
    assert [d["origin"] for d in row["disqualified"]] == ["manual:marked-gazetteer"]
    assert "cannot win" in row["disqualified"][0]["reason"]
    assert row["origin"] == "manual:train-and-val" and row["exact_match"] == 0.0


def test_train_and_val_surnames_written_with_a_mark_are_not_disqualified(tmp_path):
    row, _ = _run(tmp_path, SURNAMES, {
        "marked-train-and-val": lambda p: "{question} Например: "
        + _listed(sorted({e.answer for e in p.train + p.val}), BREVE) + ".",
    })
    assert row["disqualified"] == [] and row["origin"] == "manual:marked-train-and-val"


CODES = ["417", "052", "238", "961", "305", "774", "126", "689", "843", "590"]


def test_a_three_digit_test_answer_cannot_win(tmp_path):
    row, pair = _run(tmp_path, CODES, {
        "every-code": lambda p: f"{{question}} Коды: {', '.join(CODES)}.",
        "train-and-val": lambda p: "{question} Например: " + ", ".join(sorted({e.answer for e in p.train + p.val})),
    }, question_type="Код")
    assert [d["origin"] for d in row["disqualified"]] == ["manual:every-code"]
    assert "(3 characters)" in row["disqualified"][0]["reason"]
    assert row["origin"] == "manual:train-and-val" and row["exact_match"] == 0.0


def test_a_longer_number_holding_a_test_code_is_not_taken_for_it(tmp_path):
    test_codes = {}

    def around(pair):
        # honest: the train and val codes, and a 5-digit number that holds a test code inside it
        own = sorted({e.answer for e in pair.train + pair.val})
        test_codes["codes"] = sorted(set(CODES) - set(own))
        return f"{{question}} Например: {', '.join(own)}; не путать с номером 9{test_codes['codes'][0]}9."

    row, pair = _run(tmp_path, CODES, {"around": around}, question_type="Код")
    assert test_codes["codes"] and row["disqualified"] == [] and row["origin"] == "manual:around"
