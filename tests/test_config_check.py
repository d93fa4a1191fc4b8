"""The whole configuration is checked before anything loads: every mistake named, exit 2."""

import csv
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

import optimize.__main__  # noqa: F401 - registers the ${repo_root:} resolver
from optimize.config_check import ConfigError, check_config
from tests.cli_helpers import run_cli
from tests.task_factory import make_task

CONF = Path(__file__).resolve().parent.parent / "conf"


def _compose(*overrides):
    with initialize_config_dir(config_dir=str(CONF), version_base=None):
        return compose(config_name="config", overrides=list(overrides))


def _problems(*overrides):
    with pytest.raises(ConfigError) as info:
        check_config(_compose(*overrides))
    return str(info.value)


@pytest.mark.parametrize("group", ["optimizer", "model", "advisor", "task"])
def test_every_shipped_option_passes(group):
    for option in sorted(p.stem for p in (CONF / group).glob("*.yaml")):
        extra = ["task.csv=/data/task.csv"] if (group, option) == ("task", "csv") else []
        check_config(_compose(f"{group}={option}", *extra))  # raises if a shipped config is refused
    check_config(_compose("optimizer=chain", "advisor=panel", "budget.evaluations_per_pair=null",
                          "budget.advisor_calls=0", "split.train=0", "metric.clip_at=1"))
    check_config(_compose("metric.clip_at=2.5"))


@pytest.mark.parametrize("overrides, expected", [
    (["budget.evaluations_per_pair=-5"], "budget.evaluations_per_pair=-5: must be a whole number >= 1 or null"),
    (["budget.evaluations_per_pair=ten"], "budget.evaluations_per_pair='ten': must be a whole number"),
    (["split.train=0.9", "split.val=0.5"], "split.train=0.9 split.val=0.5: train + val is 1.4"),
    (["split.val=0"], "split.val=0: must be a number > 0 and < 1"),
    (["split.seed=1.5"], "split.seed=1.5: must be a whole number"),
    (["metric.clip_at=1e-9"], "metric.clip_at=1e-09: must be a number >= 1 or null (an empty answer scores 1"),
    (["metric.clip_at=0"], "metric.clip_at=0: must be a number >= 1 or null"),
    (["metric.clip_at=-1"], "metric.clip_at=-1: must be a number >= 1 or null"),
    (["metric.clip_at=0.99"], "metric.clip_at=0.99: must be a number >= 1 or null"),
    (["batch_size=0"], "batch_size=0: must be a whole number >= 1 or null"),
    (["budget.advisor_usd=-1"], "budget.advisor_usd=-1: must be a number >= 0 or null"),
    (["budget.advisor_usd=nan"], "must be a finite number"),
    (["progress=sometimes"], "progress='sometimes': must be true or false or null"),
    (["progress_every_s=0"], "progress_every_s=0: must be a number > 0"),
    (["task.on_bad_row=ignore"], "task.on_bad_row='ignore': must be one of error, skip"),
    (["task.max_answer_chars=0"], "task.max_answer_chars=0: must be a whole number >= 1"),
    (["+budget.evaluation_per_pair=3"], "budget.evaluation_per_pair: unknown setting (did you mean evaluations_per_pair?)"),
    (["+report_dir=x"], "report_dir: unknown setting"),
    (["optimizer=critic", "+optimizer.roundz=3"], "optimizer.roundz: unknown setting of optimizers.critic.CriticOptimizer"
                                                  " (did you mean rounds?)"),
    (["optimizer=critic", "optimizer.rounds=three"], "optimizer.rounds='three': optimizers.critic.CriticOptimizer takes int"),
    # the shared pool options (``**pool: Unpack[PoolOptions]``) are checked by name and type too
    (["optimizer=fewshot", "+optimizer.racng=true"], "optimizer.racng: unknown setting of "
                                                     "optimizers.fewshot.FewShotOptimizer (did you mean racing?)"),
    (["optimizer=retrieval", "optimizer.minibatch=four"], "optimizer.minibatch='four': "
                                                          "optimizers.retrieval.RetrievalOptimizer takes int"),
    (["optimizer=chain", "optimizer.steps.s1_critic.manual_candidates=x"], "optimizer.steps.s1_critic."
                                                                           "manual_candidates='x': "
                                                                           "optimizers.critic.CriticOptimizer takes"),
    (["optimizer=chain", "optimizer.steps.s1_critic.patience=x"], "optimizer.steps.s1_critic.patience='x'"),
    (["advisor=panel", "advisor.members.first.temperature=hot"], "advisor.members.first.temperature='hot'"),
    (["task=csv"], "task.csv: no value given (pass task.csv=...)"),
])
def test_each_mistake_is_named_as_its_override(overrides, expected):
    assert expected in _problems(*overrides)


def test_every_mistake_is_listed_at_once():
    message = _problems("budget.evaluations_per_pair=-5", "split.train=0.9", "split.val=0.5", "batch_size=0")
    assert message.count("\n  ") == 3


def test_the_cli_exits_2_naming_the_overrides_before_any_model_call(tmp_path):
    data = make_task(tmp_path / "data", n_images=4)
    calls = tmp_path / "calls.log"
    proc = run_cli(tmp_path, data, "budget.evaluations_per_pair=-5", "split.train=0.9", "split.val=0.5",
                   f"model.calls_log={calls}")
    assert proc.returncode == 2, proc.stderr
    assert "budget.evaluations_per_pair=-5" in proc.stderr and "split.train=0.9 split.val=0.5" in proc.stderr
    assert "Traceback" not in proc.stderr and not calls.exists()
    assert not (tmp_path / "store.sqlite").exists()  # nothing was opened, nothing computed


def test_a_value_a_plugin_refuses_exits_2_naming_the_group(tmp_path):
    data = make_task(tmp_path / "data", n_images=4)
    proc = run_cli(tmp_path, data, "optimizer=chain", "optimizer.budget_shares=[1.5]")
    assert proc.returncode == 2, proc.stderr
    assert "bad configuration: optimizer (optimizers.chain.ChainOptimizer)" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_clip_below_one_exits_2_in_one_line_before_any_model_call(tmp_path):
    """A tiny cap would report CER 0.0000 for answers all wrong; a cap of 1 keeps honest scores exact."""
    data = make_task(tmp_path / "data", n_images=4)
    calls = tmp_path / "calls.log"
    proc = run_cli(tmp_path, data, "metric.clip_at=1e-9", f"model.calls_log={calls}")
    assert proc.returncode == 2, proc.stderr
    (line,) = [ln for ln in proc.stderr.splitlines() if "metric.clip_at" in ln]
    assert "metric.clip_at=1e-09: must be a number >= 1 or null" in line
    assert "Traceback" not in proc.stderr and not calls.exists() and not (tmp_path / "store.sqlite").exists()
    proc = run_cli(tmp_path, data, "metric.clip_at=1")
    assert proc.returncode == 0, proc.stderr
    with (tmp_path / "out" / "Scripted-VLM_sep_none.csv").open(encoding="utf-8") as fh:
        assert len(list(csv.DictReader(fh))) == 2
