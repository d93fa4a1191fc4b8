"""Every bad input of the task format gets an error naming the file and the row."""

import logging

import pytest

from tasks.docqa_csv import DatasetError, load_task, parse_bbox
from tests.task_factory import HEADER, draw_image, make_task, write_csv


def _good_rows(root, n=3):
    rows = []
    for i in range(n):
        draw_image(root / f"img/{i}.png", f"doc {i}")
        rows.append([f"img/{i}.png", "Фамилия?", f"Иванов{i}", "passport", "Фамилия", "[1,2,30,40]"])
    return rows


def _error(csv_path):
    with pytest.raises(DatasetError) as info:
        load_task(csv_path)
    return str(info.value)


def test_valid_task_loads_with_hashes_and_bboxes(tmp_path):
    task = load_task(make_task(tmp_path, n_images=3))
    assert len(task.examples) == 6
    first = task.examples[0]
    assert first.image.is_absolute() and first.image.is_file()
    assert len(first.image_sha256) == 64
    assert first.bbox == (5.0, 20.0, 80.0, 35.0)
    assert task.examples[1].bbox is None
    assert "row 1 (line 2)" in first.source_row


def test_seed_header_spellings_and_quoted_bbox(tmp_path):
    rows = _good_rows(tmp_path, 2)
    header = ["image_path", "question", "answer", "doc class", "question type", "answear bbox"]
    task = load_task(write_csv(tmp_path / "seed.csv", rows, header))
    assert task.examples[0].doc_class == "passport"
    assert task.examples[0].bbox == (1, 2, 30, 40)
    assert parse_bbox('"[10,20,30,40]"') == (10, 20, 30, 40)


def test_missing_column(tmp_path):
    path = write_csv(tmp_path / "t.csv", [["a.png", "q", "a", "passport"]], HEADER[:4])
    msg = _error(path)
    assert str(path) in msg and "line 1" in msg and "question_type" in msg


@pytest.mark.parametrize(
    "column, value, expected",
    [
        (2, "", "empty answer"),
        (2, " «» ", "empty once quotes"),
        (1, "", "empty question"),
        (0, "img/missing.png", "image file not found"),
        (5, "[1,2,3]", "malformed bbox"),
        (5, "[30,2,1,40]", "malformed bbox"),
        (5, "left top", "malformed bbox"),
        (0, "../../etc/passwd", "escapes the data folder"),
        (0, "/etc/hostname", "escapes the data folder"),
    ],
)
def test_bad_row_names_file_and_row(tmp_path, column, value, expected):
    rows = _good_rows(tmp_path)
    rows[1][column] = value
    path = write_csv(tmp_path / "t.csv", rows)
    msg = _error(path)
    assert str(path) in msg and "row 2 (line 3)" in msg and expected in msg


def test_corrupt_image(tmp_path):
    rows = _good_rows(tmp_path)
    good = (tmp_path / "img/2.png").read_bytes()
    (tmp_path / "img/2.png").write_bytes(good[: len(good) // 2])  # truncated PNG
    (tmp_path / "img/text.png").write_text("not an image")
    rows.append(["img/text.png", "Фамилия?", "Петров", "passport", "Фамилия", ""])
    msg = _error(write_csv(tmp_path / "t.csv", rows))
    assert "row 3 (line 4)" in msg and "row 4 (line 5)" in msg and "corrupt" in msg


def test_duplicate_row(tmp_path):
    rows = _good_rows(tmp_path)
    rows.append(list(rows[0]))
    msg = _error(write_csv(tmp_path / "t.csv", rows))
    assert "row 4 (line 5)" in msg and "duplicate of row 1" in msg


def test_ragged_row(tmp_path):
    rows = _good_rows(tmp_path)
    rows[0] = rows[0][:3]
    msg = _error(write_csv(tmp_path / "t.csv", rows))
    assert "row 1 (line 2)" in msg and "3 field(s)" in msg


def test_not_utf8(tmp_path):
    rows = _good_rows(tmp_path)
    path = tmp_path / "t.csv"
    text = ",".join(HEADER) + "\n" + "\n".join(",".join(r) for r in rows) + "\n"
    path.write_bytes(text.encode("cp1251"))
    msg = _error(path)
    assert str(path) in msg and "line 2" in msg and "not UTF-8" in msg


def test_empty_task(tmp_path):
    path = write_csv(tmp_path / "t.csv", [])
    assert "empty" in _error(path)
    (tmp_path / "blank.csv").write_text("")
    assert "empty" in _error(tmp_path / "blank.csv")


def test_all_problems_are_listed_at_once(tmp_path):
    rows = _good_rows(tmp_path)
    rows[0][2] = ""
    rows[2][5] = "[x]"
    msg = _error(write_csv(tmp_path / "t.csv", rows))
    assert "2 bad row(s)" in msg and "row 1 (line 2)" in msg and "row 3 (line 4)" in msg


def test_skip_mode_warns_counts_and_keeps_good_rows(tmp_path, caplog):
    rows = _good_rows(tmp_path, 4)
    rows[1][2] = ""
    rows[3][0] = "img/nope.png"
    with caplog.at_level(logging.WARNING):
        task = load_task(write_csv(tmp_path / "t.csv", rows), on_bad_row="skip")
    assert [e.answer for e in task.examples] == ["Иванов0", "Иванов2"]
    assert len(task.skipped) == 2
    assert "skipped 2 bad row(s)" in caplog.text and "row 2 (line 3)" in caplog.text


def test_skip_mode_with_nothing_left_is_an_error(tmp_path):
    rows = _good_rows(tmp_path, 1)
    rows[0][2] = ""
    with pytest.raises(DatasetError, match="no usable rows"):
        load_task(write_csv(tmp_path / "t.csv", rows), on_bad_row="skip")


def test_absolute_path_inside_data_folder_is_allowed(tmp_path):
    rows = _good_rows(tmp_path, 1)
    rows[0][0] = str(tmp_path / "img/0.png")
    assert len(load_task(write_csv(tmp_path / "t.csv", rows)).examples) == 1


@pytest.mark.parametrize(
    "column, value, expected",
    [
        (5, "[nan,2,30,40]", "finite"),
        (5, "[1,2,inf,40]", "finite"),
        (5, "[90000,90000,90010,90010]", "outside the 160x60 image"),
        (5, "[1,2,30,200]", "outside the 160x60 image"),
        (2, "Иванов\x00", "control character U+0000"),
        (1, "\x1b[31mФамилия?\x1b[0m", "control character U+001B"),
        (3, "pass\x7fport", "control character U+007F"),
        (4, "Фам\rилия", "control character U+000D"),  # a bare CR: overwrites a terminal line
    ],
)
def test_bbox_and_control_characters_name_the_row(tmp_path, column, value, expected):
    rows = _good_rows(tmp_path)  # 160x60 images
    rows[1][column] = value
    path = write_csv(tmp_path / "t.csv", rows)
    msg = _error(path)
    assert str(path) in msg and "row 2 (line" in msg and expected in msg  # a quoted CR spans two lines
    assert "\x1b" not in msg and "\x00" not in msg  # the message never carries the character itself


def test_tab_newline_and_a_box_just_past_the_edge_are_fine(tmp_path):
    rows = _good_rows(tmp_path)
    rows[0][2] = "Иванов\tмладший"
    rows[1][1] = "Фамилия\r\nвладельца?"
    rows[2][5] = "[150,50,165,64]"  # a few pixels past the 160x60 page: annotation rounding
    task = load_task(write_csv(tmp_path / "t.csv", rows))
    assert task.examples[0].answer == "Иванов\tмладший" and task.examples[2].bbox == (150, 50, 165, 64)


def test_answer_length_limit_names_the_row_and_is_configurable(tmp_path):
    rows = _good_rows(tmp_path)
    rows[2][2] = "Я" * 100_000
    path = write_csv(tmp_path / "t.csv", rows)
    msg = _error(path)
    assert "row 3 (line 4)" in msg and "100000 characters" in msg and "task.max_answer_chars" in msg
    assert len(msg) < 2000  # the answer itself is not echoed
    rows[2][2] = "Я" * 1500
    assert len(load_task(write_csv(tmp_path / "t2.csv", rows), max_answer_chars=2000).examples) == 3
    with pytest.raises(ValueError, match="max_answer_chars"):
        load_task(path, max_answer_chars=0)


@pytest.mark.parametrize("column, name", [(3, "doc_class"), (4, "question_type")])
def test_a_label_over_200_characters_names_the_row(tmp_path, column, name):
    """A doc class or question type is a pair's short name; 5,000 characters is text in the wrong column."""
    rows = _good_rows(tmp_path)
    rows[1][column] = "Паспорт " * 625  # 5,000 characters
    path = write_csv(tmp_path / "t.csv", rows)
    msg = _error(path)
    assert str(path) in msg and "row 2 (line 3)" in msg and f"{name} is 4999 characters long" in msg
    assert "over the limit of 200" in msg and len(msg) < 1000  # the cell itself is not echoed
    rows[1][column] = "Я" * 200  # a long but possible label
    assert len(load_task(write_csv(tmp_path / "t2.csv", rows)).examples) == 3
