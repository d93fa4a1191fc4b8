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
    text = _model(60)._excerpt(_example(PAGE, "123.45"), 60, centred=True)
    assert len(text) == 60 and "123.45" in text
    left, right = text.split("123.45")
    assert abs(len(left) - len(right)) <= 1  # as much page before the answer as after it


def test_a_window_narrower_than_its_answer_is_widened_to_hold_it():
    page = "X " * 200 + ADDRESS + " Y" * 200
    text = _model(40)._excerpt(_example(page, ADDRESS), 40, centred=True)
    assert ADDRESS in text and len(text) == len(ADDRESS) + 40


def test_the_window_is_part_of_the_cache_identity():
    assert _model(150).generation_params()["demo_window"] == "answer-centred/v2"
    assert "demo_window" not in _model(None).generation_params()


def test_a_prompts_cut_wins_over_the_model_wide_one_and_the_model_wide_one_still_works():
    from models.ocr_llm_prompts import DOCUMENT_TEMPLATE
    from prompt_opt_api import Prompt
    from prompt_opt_api.demo_cut import answer_window

    demo, asked = _example(PAGE, "123.45"), _example("the page asked about", "x")

    def demo_turn(model_chars, prompt_chars):
        prompt = Prompt("{question}", demos=(demo,), demo_chars=prompt_chars)
        return _model(model_chars).build_messages(prompt, asked)[1]["content"]

    def shown(chars):
        return DOCUMENT_TEMPLATE.format(ocr_text=answer_window(PAGE, "123.45", chars) if chars else PAGE,
                                        instruction=PAGE)

    assert demo_turn(300, 60) == shown(60) != shown(300)  # the prompt's cut wins
    assert demo_turn(None, 60) == shown(60)
    assert demo_turn(300, None) == shown(300)  # the model-wide cut, for prompts without their own
    assert demo_turn(None, None) == shown(None)  # whole pages
    assert _model(None).cuts_demo_text is True
