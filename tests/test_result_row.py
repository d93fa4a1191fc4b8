"""A result row is one typed dataclass: the CSV's columns in their order, the store's JSON by column name."""

import json
import math

import pytest

from optimize.result_row import CER_COLUMN, PAIR_COLUMN, PROMPT_COLUMN, ResultRow, ordered
from optimize.results_files import csv_text, write_results_csv

HEADER = ("doc type question type,optimal prompt,cer,cer_ci_low,cer_ci_high,val_cer,exact_match,n_train,n_val,"
          "n_test,optimizer,origin,author,n_demos,demos,answer_model_evaluations,advisor_calls,advisor_cost_usd,"
          "status")


def _finished() -> ResultRow:
    return ResultRow(pair="Паспорт Фамилия", prompt="{question} Ответь кратко.", cer=0.125,
                     cer_ci_low=0.0, cer_ci_high=0.25, val_cer=math.nan, exact_match=0.5, n_train=4, n_val=3, n_test=3,
                     optimizer="manual", origin="manual", author="manual", n_demos=0, demos="",
                     answer_model_evaluations=15, advisor_calls=0, advisor_cost_usd=0.0, status="ok",
                     by_author={"manual": {"val_cer": 0.1}}, book_entry={"template": "{question}"},
                     disqualified=[{"prompt": "x", "reason": "y"}])


def test_the_results_csv_keeps_its_columns_and_their_order(tmp_path):
    skipped = ResultRow("Счёт НДС", status="skipped: 2 examples", optimizer="manual")
    write_results_csv(tmp_path / "r.csv", ordered([_finished(), skipped]))
    lines = (tmp_path / "r.csv").read_text(encoding="utf-8").splitlines()
    assert lines[0] == HEADER
    assert lines[1] == ("Паспорт Фамилия,{question} Ответь кратко.,0.1250,0.0000,0.2500,,0.5000,4,3,3,manual,"
                        "manual,manual,0,,15,0,0.0000,ok")
    assert lines[2] == "Счёт НДС,,,,,,,,,,manual,,,,,,,,skipped: 2 examples"  # empty, never "None"


def test_a_finished_row_is_stored_by_its_column_names_and_read_back_whole():
    row = _finished()
    stored = json.loads(json.dumps(row.to_json()))  # as the store keeps it
    assert stored[PAIR_COLUMN] == row.pair and stored[PROMPT_COLUMN] == row.prompt
    assert stored[CER_COLUMN] == 0.125
    assert "pair" not in stored and "prompt" not in stored and stored["book_entry"] == {"template": "{question}"}
    back = ResultRow.from_json({**stored, "a key of another version": 1})
    assert math.isnan(back.val_cer)
    assert csv_text(HEADER.split(","), [back]) == csv_text(HEADER.split(","), [row])
    assert {k: v for k, v in vars(back).items() if k != "val_cer"} == {k: v for k, v in vars(row).items()
                                                                        if k != "val_cer"}


def test_a_row_is_read_by_its_column_names():
    row, skipped = _finished(), ResultRow("Счёт НДС", status="skipped: 2 examples")
    assert row[PROMPT_COLUMN] == row.prompt and row["n_val"] == 3 and row.get(PAIR_COLUMN) == "Паспорт Фамилия"
    assert skipped.get(CER_COLUMN, "") == "" and skipped[CER_COLUMN] is None
    assert skipped.get("no such column", "?") == "?"
    with pytest.raises(KeyError):
        row["no such column"]
