"""The split is by document for the whole task, and the engine holds any splitter to it.

A page is train, val or test for every pair it appears in; a page saved twice (other bytes,
the same document) is one split unit; a configured splitter that puts one document in two
splits is refused before any model loads. Each cheat below is tried through the public
API, a CSV or the command line, beside an honest counterpart that is unaffected.
"""

import hashlib
import json
from pathlib import Path

from PIL import Image

from prompt_opt_api import Optimizer, Prompt, Provenance, baseline_prompt
from prompt_opt_api.page_units import page_units
from tasks.docqa_csv import load_task
from tasks.pair_splits import SplitConfig, split_pairs
from tests.cli_helpers import run_cli
from tests.engine_harness import run_engine
from tests.scripted_answer_model import ScriptedAnswerModel
from tests.task_factory import SURNAMES, draw_image, make_task, write_csv

NAMES = ["Иван", "Мария", "Пётр", "Анна", "Олег", "Нина", "Глеб", "Вера", "Юрий", "Зоя"]


class ShownAnswerModel(ScriptedAnswerModel):
    """Answers right exactly when the prompt it is shown contains the answer."""

    name = "Shown-VLM"

    def _one(self, prompt, example):
        return example.answer if example.answer.casefold() in prompt.render(example).casefold() else "не знаю"


class Plugin(Optimizer):
    name = "plugin"
    uses_advisor = False

    def __init__(self, body):
        self.body = body

    def optimize(self, pair, evaluator, advisor):
        return self.body(pair, evaluator) or []


def _content(example):
    return hashlib.sha256(Path(example.image).read_bytes()).hexdigest()


def _full_name_task(root, n=10):
    """Passports asked for the full name (ФИО) and for the surname (Фамилия): overlapping fields."""
    rows = []
    for i in range(n):
        draw_image(root / f"images/{i}.png", f"passport {i}")
        rows.append([f"images/{i}.png", "ФИО владельца?", f"{SURNAMES[i]} {NAMES[i]}", "passport", "ФИО", ""])
        rows.append([f"images/{i}.png", "Какая фамилия?", SURNAMES[i], "passport", "Фамилия", ""])
    return write_csv(root / "task.csv", rows)


def _twins_task(root, n=10, twins=True):
    """Passports, each page (with ``twins``) also saved again as a JPEG: other bytes, the same document."""
    rows = []
    for i in range(n):
        draw_image(root / f"images/{i}.png", f"doc {i}")
        rows.append([f"images/{i}.png", "Какая фамилия?", SURNAMES[i], "passport", "Фамилия", ""])
        if twins:
            Image.open(root / f"images/{i}.png").convert("RGB").save(root / f"images/{i}-copy.jpg", quality=92)
            rows.append([f"images/{i}-copy.jpg", "Какая фамилия?", SURNAMES[i], "passport", "Фамилия", ""])
    return write_csv(root / "task.csv", rows)


# -- one split for the task: no page of a later pair's test split is seen under a sibling -----------

def test_a_plugin_keeping_pages_across_pairs_holds_no_test_page_of_a_later_pair(tmp_path):
    held = {}  # page content -> the labels the plugin saw with it, under any pair
    held_when = {}  # pair -> the pages the plugin held when that pair started

    def keeps_state(pair, evaluator):
        held_when[pair.key] = dict(held)
        for ex in pair.train + pair.val:
            held.setdefault(_content(ex), []).append((pair.key, ex.answer))
        evaluator.score(baseline_prompt(), pair.val)

    run = run_engine(tmp_path, Plugin(keeps_state), model=ShownAnswerModel(), data=_full_name_task(tmp_path / "data"))
    pairs = run.pairs
    assert [p.key for p in pairs] == ["passport ФИО", "passport Фамилия"]  # the full name runs first
    for pair in pairs:
        test_pages = {_content(ex) for ex in pair.test}
        assert test_pages and not test_pages & set(held_when[pair.key])
        assert not test_pages & set(held)  # nor after it: no pair's train or val holds a test page
    # the honest side is unchanged: every pair has its train, val and test, and is scored
    assert all(p.train and p.val and p.test for p in pairs)
    assert all(r["status"].startswith("ok") for r in run.summary.rows)


def test_the_demo_task_splits_every_pair_by_document_with_train_val_and_test():
    demo = Path(__file__).resolve().parent.parent / "tasks" / "demo" / "task.csv"
    pairs, too_small = split_pairs(load_task(demo).examples, SplitConfig())
    assert len(pairs) == 30 and not too_small
    split_of = {}
    for pair in pairs:
        for name in ("train", "val", "test"):
            for ex in getattr(pair, name):
                assert split_of.setdefault(ex.image_sha256, name) == name, (pair.key, ex.source_row)
        assert (len(pair.train), len(pair.val), len(pair.test)) == (4, 3, 3)


# -- near-duplicate pages are one document --------------------------------------------------------

def _gazetteer(pair, evaluator):
    """An honest-looking plugin: the surnames of its own train and val pages as examples."""
    own = ", ".join(sorted({ex.answer for ex in pair.train + pair.val}))
    evaluator.score(Prompt(f"{{question}} Например: {own}.", provenance=Provenance("manual", "manual", "gazetteer")),
                    pair.val)


def test_each_page_twice_re_encoded_is_one_document_and_a_train_val_gazetteer_gets_no_free_test_answers(tmp_path):
    data = _twins_task(tmp_path / "twins")
    examples = load_task(data).examples
    units = page_units(examples)
    assert (units.pages, units.units, units.grouped_pages) == (20, 10, 20)
    twice = run_engine(tmp_path / "a", Plugin(_gazetteer), model=ShownAnswerModel(), data=data)
    (pair,) = twice.pairs
    seen = {ex.answer for ex in pair.train + pair.val}  # each document's answer, under either copy
    assert pair.test and not {ex.answer for ex in pair.test} & seen
    # no test answer comes for free: as with the same documents saved once (the honest counterpart)
    once = run_engine(tmp_path / "b", Plugin(_gazetteer), model=ShownAnswerModel(),
                      data=_twins_task(tmp_path / "once", twins=False))
    assert twice.row["exact_match"] == once.row["exact_match"] == 0.0
    assert twice.row["val_cer"] == once.row["val_cer"] == 0.0


def test_distinct_pages_are_not_grouped_and_split_as_by_sha256(tmp_path):
    examples = load_task(make_task(tmp_path / "data", n_images=12)).examples
    units = page_units(examples)
    assert (units.pages, units.units, units.grouped_pages) == (12, 12, 0)
    grouped, _ = split_pairs(examples, SplitConfig())
    by_sha, _ = split_pairs(examples, SplitConfig(near_duplicate_cosine=None))
    assert grouped == by_sha


# -- the engine checks any splitter ------------------------------------------------------------

def _refused(tmp_path, data, target):
    calls = tmp_path / "calls.log"
    proc = run_cli(tmp_path, data, f"split._target_=tests.splitters.{target}", f"model.calls_log={calls}")
    errors = [line for line in proc.stderr.splitlines() if "ERROR" in line]
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert len(errors) == 1 and "does not split by document" in errors[0], proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert not calls.exists() and not (tmp_path / "store.sqlite").exists()  # before any model or store
    return errors[0]


def test_a_splitter_whose_val_is_the_test_split_is_refused_before_any_model_loads(tmp_path):
    line = _refused(tmp_path, make_task(tmp_path / "data", n_images=10), "ValIsTest")
    assert "split._target_=tests.splitters.ValIsTest" in line and "the same image" in line
    assert "is val for pair" in line and "is test for pair" in line


def test_a_splitter_that_splits_each_pair_on_its_own_is_refused(tmp_path):
    line = _refused(tmp_path, make_task(tmp_path / "data", n_images=10), "PerPair")
    assert "passport Номер" in line and "passport Фамилия" in line


def test_a_splitter_that_puts_a_page_and_its_copy_apart_is_refused(tmp_path):
    line = _refused(tmp_path, _twins_task(tmp_path / "data"), "BySha256Only")
    assert "near-duplicate pages" in line and "-copy.jpg" in line


def test_an_honest_custom_splitter_runs_and_the_plan_and_run_report_the_split_units(tmp_path):
    data = _twins_task(tmp_path / "data")
    plan = run_cli(tmp_path, data, "split._target_=tests.splitters.OtherSeed", "plan=true", out="plan")
    assert plan.returncode == 0, plan.stderr[-2000:]
    assert "split:           by document, 20 pages in 10 split units (20 near-duplicate pages grouped" in plan.stdout
    proc = run_cli(tmp_path, data, "split._target_=tests.splitters.OtherSeed")
    assert proc.returncode == 0, proc.stderr[-2000:]
    record = json.loads((tmp_path / "out" / "run.json").read_text(encoding="utf-8"))
    assert {k: record["split_units"][k] for k in ("pages", "units", "grouped_pages")} == {
        "pages": 20, "units": 10, "grouped_pages": 20}
    assert "split by document: 20 pages in 10 split units" in (tmp_path / "out" / "report.html").read_text(
        encoding="utf-8")
