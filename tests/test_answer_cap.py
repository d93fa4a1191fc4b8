"""``fit_answer_cap``: the answer model's length cap is raised to fit the longest train answer
of the pairs run (never lowered, val and test answers never read), resolved before the run id,
so the cache key and the book carry the number."""

from __future__ import annotations

from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

import optimize.__main__  # noqa: F401 - registers the ${repo_root:} resolver the configs use
from optimize.answer_cap import MAX_FITTED_CAP, SPARE_TOKENS, resolve_answer_cap
from tasks.docqa_csv import load_task
from tasks.pair_splits import SplitConfig, split_pairs
from tests.cli_helpers import REPO, run_cli
from tests.task_factory import draw_image, write_csv

CONF = REPO / "conf"
ADDRESS = "LOT 1851-A & 1851-B, JALAN KPB 6, KAWASAN PERINDUSTRIAN BALAKONG, 43300 SERI KEMBANGAN"


def _config(*overrides, model="ocr_llm"):
    with initialize_config_dir(version_base=None, config_dir=str(CONF)):
        return compose("config", overrides=[f"model={model}", *overrides])


def _receipts(root, n=10, long_on_test_only=False):
    """Receipts with an address field: every address long, or long on the test pages only."""
    def rows(long_pages):
        out = []
        for i in range(n):
            draw_image(root / f"images/{i}.png", f"receipt {i}")
            address = f"{ADDRESS} {i}" if f"{i}.png" in long_pages else f"JALAN {i}"
            out.append([f"images/{i}.png", "Address?", address, "receipt", "address", ""])
        return out

    csv_path = write_csv(root / "task.csv", rows({f"{i}.png" for i in range(n)}))
    if long_on_test_only:
        pairs, _ = split_pairs(load_task(csv_path).examples, SplitConfig())
        csv_path = write_csv(root / "task.csv", rows({ex.image.name for p in pairs for ex in p.test}))
    return csv_path


def _resolved(cfg, key="max_tokens"):
    task = instantiate(cfg.task, _partial_=True)()
    pairs, _ = instantiate(cfg.split).split(task.examples, list(cfg.pairs or task.selection))
    note = resolve_answer_cap(cfg, pairs)
    return cfg.model[key], note


def test_long_train_answers_raise_the_cap_to_fit_them(tmp_path):
    cap, note = _resolved(_config("task=csv", f"task.csv={_receipts(tmp_path)}"))
    longest = len(ADDRESS) + 2  # " 9" at most
    assert 32 < cap <= longest + SPARE_TOKENS and cap >= len(ADDRESS) + SPARE_TOKENS
    assert f"model.max_tokens={cap} (configured 32)" in note and "fit_answer_cap=false" in note


def test_the_cap_named_max_new_tokens_is_raised_too(tmp_path):
    cap, note = _resolved(_config("task=csv", f"task.csv={_receipts(tmp_path)}", model="qwen2_vl_2b"),
                          key="max_new_tokens")
    assert cap > 32 and "model.max_new_tokens=" in note


def test_short_answers_keep_the_configured_cap_and_the_demo_jobs_keys():
    cfg = _config()
    assert cfg.fit_answer_cap is True
    assert _resolved(cfg) == (32, None)  # the main job's pairs: the cap and so its cache keys stay


def test_only_train_answers_are_read(tmp_path):
    assert _resolved(_config("task=csv", f"task.csv={_receipts(tmp_path, long_on_test_only=True)}")) == (32, None)


def test_false_keeps_the_configured_cap(tmp_path):
    cfg = _config("task=csv", f"task.csv={_receipts(tmp_path)}", "fit_answer_cap=false")
    assert _resolved(cfg) == (32, None)


def test_a_larger_configured_cap_is_never_lowered(tmp_path):
    cfg = _config("task=csv", f"task.csv={_receipts(tmp_path)}", "model.max_tokens=300")
    assert _resolved(cfg) == (300, None)


def test_the_plan_shows_the_raised_cap_and_a_bad_value_exits_2(tmp_path):
    data = _receipts(tmp_path)
    shown = run_cli(tmp_path, data, "plan=true", model="ocr_llm")
    assert shown.returncode == 0, shown.stderr
    assert "model.max_tokens=" in shown.stderr and "(configured 32)" in shown.stderr
    bad = run_cli(tmp_path, data, "plan=true", "fit_answer_cap=sometimes", model="ocr_llm")
    assert bad.returncode == 2 and "fit_answer_cap" in bad.stderr


def test_a_cap_that_is_not_a_whole_number_is_left_as_configured(tmp_path):
    data = f"task.csv={_receipts(tmp_path)}"
    assert _resolved(_config("task=csv", data, "model.max_tokens=null")) == (None, None)  # no cap: none to raise
    assert _resolved(_config("task=csv", data, "model.max_tokens=true")) == (True, None)  # not read as the number 1
    assert _resolved(_config("task=csv", data, "model.max_tokens=40"))[0] > 40  # a whole number is raised


def test_a_raise_stops_at_its_limit_and_at_a_quarter_of_the_context(tmp_path):
    long = "X" * 900  # within the loader's max_answer_chars, no field value
    rows = []
    for i in range(10):
        draw_image(tmp_path / f"images/{i}.png", f"page {i}")
        rows.append([f"images/{i}.png", "Text?", f"{long} {i}", "page", "text", ""])
    data = write_csv(tmp_path / "task.csv", rows)
    assert _resolved(_config("task=csv", f"task.csv={data}"))[0] == MAX_FITTED_CAP
    assert _resolved(_config("task=csv", f"task.csv={data}", "model.n_ctx=512"))[0] == 128
    assert _resolved(_config("task=csv", f"task.csv={data}", "model.n_ctx=64", "model.max_tokens=40"))[0] == 40
