"""``model.tesseract_lang=auto``: the OCR languages follow the scripts of the task's train answers,
and the resolved value is what the cache key, the run id and the prompt book carry."""

from __future__ import annotations

import json

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

import optimize.__main__  # noqa: F401 - registers the ${repo_root:} resolver the configs use
from models.ocr_llm import TesseractOcr
from optimize.ocr_language import has_cyrillic, ocr_language, resolve_ocr_language, train_answers
from prompt_opt_api import TaskError, cache_key
from scripts.default_models import DEMO_OCR_LANG
from tasks.docqa_csv import load_task
from tasks.pair_splits import SplitConfig, split_pairs
from tests.cli_helpers import REPO, run_cli
from tests.task_factory import draw_image, make_task, write_csv

CONF = REPO / "conf"


def _config(*overrides):
    with initialize_config_dir(version_base=None, config_dir=str(CONF)):
        return compose("config", overrides=["model=ocr_llm", *overrides])


def _resolved(cfg):
    task = instantiate(cfg.task, _partial_=True)()
    pairs, _ = instantiate(cfg.split).split(task.examples, list(cfg.pairs or task.selection))
    note = resolve_ocr_language(cfg, task.examples, pairs)
    return cfg.model.tesseract_lang, note


def _latin_task(root, n=10, test_cyrillic=False):
    rows = []
    for i in range(n):
        draw_image(root / f"images/{i}.png", f"receipt {i}")
        rows.append([f"images/{i}.png", "Company?", f"SHOP {i} SDN BHD", "receipt", "company", ""])
        rows.append([f"images/{i}.png", "Total?", f"RM{i + 3}.50", "receipt", "total", ""])
    csv_path = write_csv(root / "task.csv", rows)
    if test_cyrillic:  # a Cyrillic answer on each test page only
        pairs, _ = split_pairs(load_task(csv_path).examples, SplitConfig())
        test_pages = {ex.image.name for p in pairs for ex in p.test}
        rows = [[*r[:2], r[2] + (" ООО" if r[0].split("/")[1] in test_pages else ""), *r[3:]] for r in rows]
        csv_path = write_csv(root / "task.csv", rows)
    return csv_path


def test_the_config_default_is_auto_and_the_demo_task_resolves_to_rus_and_eng():
    cfg = _config()
    assert cfg.model.tesseract_lang == "auto"
    lang, note = _resolved(cfg)
    assert lang == "rus+eng" == DEMO_OCR_LANG and "Cyrillic" in note  # the scripts' model_config reads alike
    # as the explicit setting it replaces: the same OCR identity, so the demo set's OCR cache keys stay
    assert instantiate(cfg.model).ocr.__dict__ == instantiate(_config("model.tesseract_lang=rus+eng").model).ocr.__dict__


def test_a_latin_only_task_resolves_to_eng(tmp_path):
    lang, note = _resolved(_config("task=csv", f"task.csv={_latin_task(tmp_path)}"))
    assert lang == "eng" and "none of the" in note


def test_only_train_answers_choose_the_language(tmp_path):
    data = _latin_task(tmp_path, test_cyrillic=True)
    assert any("ООО" in ex.answer for ex in load_task(data).examples)
    lang, _ = _resolved(_config("task=csv", f"task.csv={data}"))
    assert lang == "eng"  # Cyrillic on test pages only: not looked at


def test_an_explicit_setting_is_kept_as_given(tmp_path):
    for lang in ("rus+eng", "rus", "eng"):
        cfg = _config("task=csv", f"task.csv={_latin_task(tmp_path)}", f"model.tesseract_lang={lang}")
        assert _resolved(cfg) == (lang, None)


def test_every_field_on_the_train_pages_counts_and_no_train_page_reads_both_scripts(tmp_path):
    data = make_task(tmp_path, n_images=8)  # Cyrillic surnames and digit-only numbers on the same pages
    pairs, _ = split_pairs(load_task(data).examples, SplitConfig())
    numbers = [p for p in pairs if p.question_type == "Номер"]
    answers = train_answers(load_task(data).examples, numbers)
    assert ocr_language(answers)[0] == "rus+eng"  # the numbers' pages carry the names
    assert ocr_language([])[0] == "rus+eng" and ocr_language(["45 06 123456"])[0] == "eng"


def test_an_unresolved_auto_refuses_to_read_or_key_naming_the_setting(tmp_path):
    model = instantiate(_config().model)  # built unresolved: construction stays cheap
    assert model.ocr.lang == "auto"
    with pytest.raises(TaskError, match="tesseract_lang=auto"):
        model.ocr.identity  # noqa: B018
    with pytest.raises(TaskError, match="tesseract_lang=auto"):
        TesseractOcr("auto").read(tmp_path / "x.png")


def _book(tmp_path, data, *overrides, out="out"):
    proc = run_cli(tmp_path, data, *overrides, "optimizer=manual", out=out, model="scripted_ocr")
    assert proc.returncode == 0, proc.stderr[-3000:]
    (book,) = (tmp_path / out).glob("Scripted-OCR_sep_none.book.json")
    return json.loads(book.read_text(encoding="utf-8"))["answer_model"], proc.stderr


def test_the_book_and_the_cache_identity_carry_the_resolved_language(tmp_path):
    latin = _latin_task(tmp_path / "latin")
    model, log = _book(tmp_path, latin)
    assert model["config"]["tesseract_lang"] == "eng" and model["identity"]["ocr"] == {"lang": "eng"}
    assert "model.tesseract_lang=auto: eng" in log
    cyrillic = make_task(tmp_path / "cyrillic", n_images=8)
    model, _ = _book(tmp_path, cyrillic, out="out2")
    assert model["config"]["tesseract_lang"] == "rus+eng" and model["identity"]["ocr"] == {"lang": "rus+eng"}
    model, log = _book(tmp_path, cyrillic, "model.tesseract_lang=eng", out="out3")
    assert model["config"]["tesseract_lang"] == "eng" and "tesseract_lang=auto" not in log


@pytest.mark.real
def test_the_demo_tasks_ocr_cache_key_is_the_one_rus_and_eng_made():
    cfg = _config()
    _resolved(cfg)
    auto, explicit = instantiate(cfg.model), instantiate(_config("model.tesseract_lang=rus+eng").model)
    example = load_task(CONF.parent / "tasks/demo/task.csv").examples[0]
    key = cache_key({"ocr": auto.ocr.identity, "image_sha256": example.image_sha256})
    assert key == cache_key({"ocr": explicit.ocr.identity, "image_sha256": example.image_sha256})
    assert json.dumps(auto.cache_identity()["ocr"], sort_keys=True) == json.dumps(explicit.ocr.identity, sort_keys=True)


@pytest.mark.real
def test_a_latin_page_is_read_with_eng_when_the_answers_are_latin(tmp_path):
    from PIL import Image, ImageDraw, ImageFont

    page = tmp_path / "receipt.png"
    img = Image.new("RGB", (900, 160), "white")
    font = ImageFont.truetype("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", 48)
    ImageDraw.Draw(img).text((20, 50), "TOTAL RM 9.00 CASH", fill="black", font=font)
    img.save(page)
    lang, _ = ocr_language(["RM9.00", "SHOP SDN BHD"])
    text = TesseractOcr(lang, 6).read(page)
    assert lang == "eng" and "TOTAL" in text and not has_cyrillic(text)
