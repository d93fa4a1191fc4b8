"""What a run and a task are: settings that do not change answers keep the run id, and a
task's identity does not depend on where its CSV lies."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

import optimize.__main__  # noqa: F401 - registers the ${repo_root:} resolver
from optimize.run_settings import run_id_of
from optimize.task_identity import task_sha256
from tasks.docqa_csv import load_task
from tests.task_factory import make_task

CONF = Path(__file__).resolve().parent.parent / "conf"


def _run_id(*overrides, uses_advisor=None):
    with initialize_config_dir(config_dir=str(CONF), version_base=None):
        cfg = compose(config_name="config", overrides=list(overrides))
    if uses_advisor is None:
        uses_advisor = instantiate(cfg.optimizer).uses_advisor
    return run_id_of(cfg, "task", uses_advisor)


@pytest.mark.parametrize("base, execution_only", [
    (["model=ocr_llm"], ["model.n_threads=2", "model.kv_cache_mb=0", "model.batch_size=2", "batch_size=3",
                         "paths.models=/elsewhere", "paths.store=/elsewhere/s.sqlite", "lease_wait_s=60",
                         "progress=false", "advisor.timeout_s=5", "advisor.num_retries=0"]),
    (["model=openai_vlm", "advisor=panel"], ["model.concurrency=2", "model.timeout_s=5", "model.num_retries=0",
                                             "model.retry_initial_wait_s=9"]),
    (["model=qwen2_vl_2b"], ["model.batch_size=1"]),
])
def test_settings_that_do_not_change_answers_keep_the_run_id(base, execution_only):
    """Changing threads, KV cache, batching, timeouts or where weights lie resumes the same run."""
    assert _run_id(*base, *execution_only) == _run_id(*base)


@pytest.mark.parametrize("changed", ["model.max_tokens=16", "model.n_ctx=2048", "model.tesseract_psm=6",
                                     "advisor.temperature=0.3", "advisor.max_tokens=100", "split.seed=1",
                                     "optimizer.steps.s1_critic.rounds=2", "budget.evaluations_per_pair=10",
                                     "budget.advisor_usd=1", "advisor=gpt4o"])
def test_settings_that_change_answers_change_the_run_id(changed):
    assert _run_id(changed) != _run_id()


def test_the_advisor_of_an_optimizer_that_uses_none_is_not_part_of_the_run():
    """``optimizer=fewshot advisor=none,local`` is one run (it writes under advisor "none" either way)."""
    fewshot = _run_id("optimizer=fewshot", "advisor=none")
    assert _run_id("optimizer=fewshot", "advisor=local") == fewshot
    assert _run_id("optimizer=fewshot", "advisor=gpt4o", "budget.advisor_usd=1", "budget.advisor_calls=3") == fewshot
    assert _run_id("optimizer=fewshot", "advisor=local", "optimizer.k=1") != fewshot
    # an optimizer that uses one: the advisor is part of the run
    assert _run_id("optimizer=critic", "advisor=local") != _run_id("optimizer=critic", "advisor=gpt4o")


def test_a_csv_path_holding_a_comma_does_not_change_the_task_identity(tmp_path):
    """The CSV's path is not part of a task's identity, whatever it holds (", " included)."""
    plain = load_task(make_task(tmp_path / "data", n_images=4)).examples
    comma = load_task(make_task(tmp_path / "Иванов, Петрова" / "data, v2", n_images=4)).examples
    assert ", " in comma[0].source_row.rsplit(", row ", 1)[0]
    assert task_sha256(comma) == task_sha256(plain)
    other = load_task(make_task(tmp_path / "more", n_images=5)).examples
    assert task_sha256(other) != task_sha256(plain)
