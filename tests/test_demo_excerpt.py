"""The demo page text the CPU model reads with ``demo_chars``: a window centred on the answer,
wide enough to hold it whole."""

from pathlib import Path

from hydra.utils import instantiate

from prompt_opt_api import Example
from scripts.default_models import model_config

PAGE = "HEADER " * 40 + "TOTAL RM 123.45 " + "FOOTER " * 40  # the answer in the middle of a 576-char page
ADDRESS = "NO 12, JALAN PERMAS 10/2, BANDAR BARU PERMAS JAYA, 81750 MASAI, JOHOR"  # 69 characters


def _model(demo_chars):
    model = instantiate(model_config(demo_chars=demo_chars))
    model.ocr_text = lambda example: example.question  # the page text, without Tesseract
    return model


def _example(page, answer):
    return Example(image=Path("p.png"), question=page, answer=answer, doc_class="receipt", question_type="x",
                   bbox=None, image_sha256="0" * 64)


def test_a_demo_window_is_centred_on_its_answer():
    text = _model(60)._excerpt(_example(PAGE, "123.45"), 60)
    assert len(text) == 60 and "123.45" in text
    left, right = text.split("123.45")
    assert abs(len(left) - len(right)) <= 1  # as much page before the answer as after it


def test_a_window_narrower_than_its_answer_is_widened_to_hold_it():
    page = "X " * 200 + ADDRESS + " Y" * 200
    text = _model(40)._excerpt(_example(page, ADDRESS), 40)
    assert ADDRESS in text and len(text) == len(ADDRESS) + 40


def test_the_window_is_part_of_the_cache_identity():
    assert _model(150).generation_params()["demo_window"] == "answer-centred/v2"
    assert "demo_window" not in _model(None).generation_params()
