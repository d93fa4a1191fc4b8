"""What a plugin's author is told: a bug named by the plugin's file and line (no "retry"), a
model or advisor failure with "retry", why pair.test or an empty list cannot be scored, an
``optimize`` without ``advisor`` refused by the configuration check (exit 2), and a winning
template without ``{question}`` warned about in the log, the row, run.json and the report."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import sys
from pathlib import Path

import pytest

from optimizers.manual import ManualOptimizer
from prompt_opt_api import Advisor, AdvisorError, Optimizer, baseline_prompt
from tests.cli_helpers import REPO, run_cli
from tests.engine_harness import AskingOptimizer, run_engine
from tests.scripted_answer_model import ScriptedAnswerModel
from tests.task_factory import make_task

PLUGIN = '''\
from prompt_opt_api import Optimizer, baseline_prompt
from optimizers.manual import ManualOptimizer


class BuggyOptimizer(Optimizer):
    name = "buggy"

    def optimize(self, pair, evaluator, advisor):
        evaluator.score(baseline_prompt(), pair.val)
        return [len(pair.val) / 0]


class WrongArgumentOptimizer(Optimizer):
    name = "wrong_argument"

    def optimize(self, pair, evaluator, advisor):
        return [evaluator.score("{question}", pair.val)]


class TestScoringOptimizer(Optimizer):
    name = "test_scoring"

    def optimize(self, pair, evaluator, advisor):
        return [evaluator.score(baseline_prompt(), pair.test)]


class EmptyScoringOptimizer(Optimizer):
    name = "empty_scoring"

    def optimize(self, pair, evaluator, advisor):
        return [evaluator.score(baseline_prompt(), [])]


class NoAdvisorOptimizer(ManualOptimizer):
    def optimize(self, pair, evaluator):
        return super().optimize(pair, evaluator, None)


class HonestOptimizer(ManualOptimizer):
    def optimize(self, pair, evaluator, advisor=None):
        return super().optimize(pair, evaluator, advisor)
'''


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """The plugins above as a module file of their own (``pluginmod``), importable by name."""
    path = tmp_path / "plugins" / "pluginmod.py"
    path.parent.mkdir()
    path.write_text(PLUGIN, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("pluginmod", path)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "pluginmod", module)
    spec.loader.exec_module(module)
    return module


def _line_of(text: str) -> int:
    return PLUGIN.splitlines().index(text) + 1


def _errors(caplog):
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


def test_a_bug_in_a_plugin_names_its_file_and_line_and_says_no_retry(tmp_path, plugin, caplog):
    path = Path(plugin.__file__).resolve()
    line = _line_of("        return [len(pair.val) / 0]")
    rows = run_engine(tmp_path, plugin.BuggyOptimizer()).rows_by_key
    (message,) = _errors(caplog)
    assert message == (f"pair 'passport Фамилия' failed: ZeroDivisionError: division by zero; a bug in the optimizer "
                       f"buggy at {path}:{line} in optimize: `return [len(pair.val) / 0]`: fix it and run the same "
                       "command again, finished pairs are kept (the run goes on)")
    assert "retry" not in message
    assert rows["passport Фамилия"]["status"] == (f"failed: ZeroDivisionError: division by zero (optimizer buggy at "
                                                  f"{path}:{line} in optimize)")


def test_a_contract_error_raised_by_the_engine_names_the_plugin_line_that_caused_it(tmp_path, plugin, caplog):
    line = _line_of('        return [evaluator.score("{question}", pair.val)]')
    run_engine(tmp_path, plugin.WrongArgumentOptimizer())
    (message,) = _errors(caplog)
    assert message.startswith("pair 'passport Фамилия' failed: TypeError: ")
    assert f"a bug in the optimizer wrong_argument at {Path(plugin.__file__).resolve()}:{line} in optimize" in message
    assert "evaluator.py" not in message and "retry" not in message


class _FlakyAdvisor(Advisor):
    name = "flaky"

    def complete(self, messages, **kwargs):
        raise AdvisorError("advisor 'flaky' gave no usable reply: 500 three times")



def test_a_model_or_advisor_failure_keeps_the_retry_advice(tmp_path, caplog):
    rows = run_engine(tmp_path / "model", ManualOptimizer(["{question} Кратко."]),
                      model=ScriptedAnswerModel(fail_pair="passport Фамилия")).rows_by_key
    (message,) = _errors(caplog)
    assert message.startswith("pair 'passport Фамилия' failed: RuntimeError: scripted failure on passport Фамилия; "
                              "from the answer model Scripted-VLM at ")
    assert "scripted_answer_model.py:" in message
    assert message.endswith("(the run goes on; re-run the same command to retry it)")
    assert rows["passport Фамилия"]["status"] == "failed: RuntimeError: scripted failure on passport Фамилия"

    caplog.clear()
    run_engine(tmp_path / "advisor", AskingOptimizer(), session=_FlakyAdvisor())  # no session between: as is
    (message,) = _errors(caplog)
    assert message.startswith("pair 'passport Фамилия' failed: AdvisorError: advisor 'flaky' gave no usable reply")
    assert "from the advisor flaky" in message and message.endswith("re-run the same command to retry it)")


def test_scoring_pair_test_says_it_is_held_out_and_an_empty_list_says_it_is_empty(tmp_path, plugin):
    held_out = run_engine(tmp_path / "test", plugin.TestScoringOptimizer()).rows_by_key["passport Фамилия"]["status"]
    assert held_out.startswith("failed: ValueError: cannot score on pair.test: the test split is held out by design "
                               "(empty for optimizers; the engine scores the winner on it once): score on pair.val to "
                               "compete, or on pair.train")
    empty = run_engine(tmp_path / "empty", plugin.EmptyScoringOptimizer()).rows_by_key["passport Фамилия"]["status"]
    assert empty.startswith("failed: ValueError: cannot score a prompt on zero examples: the examples given are empty")


def test_an_optimize_without_advisor_fails_the_configuration_check_naming_class_and_parameter(tmp_path, plugin):
    data = make_task(tmp_path / "data", n_images=4)
    calls = tmp_path / "calls.log"
    env = {"PYTHONPATH": os.pathsep.join([str(REPO), str(Path(plugin.__file__).parent)])}
    proc = run_cli(tmp_path, data, "optimizer=manual", "optimizer._target_=pluginmod.NoAdvisorOptimizer",
                   f"model.calls_log={calls}", env=env)
    assert proc.returncode == 2, proc.stderr
    assert ("optimizer._target_=pluginmod.NoAdvisorOptimizer: NoAdvisorOptimizer.optimize(self, pair, evaluator) "
            "lacks the parameter advisor; every optimizer's optimize is (self, pair, evaluator, advisor)") in proc.stderr
    assert "Traceback" not in proc.stderr and not calls.exists() and not (tmp_path / "store.sqlite").exists()

    honest = run_cli(tmp_path, data, "optimizer=manual", "optimizer._target_=pluginmod.HonestOptimizer", out="out2",
                     env=env)
    assert honest.returncode == 0, honest.stderr  # a default value for advisor keeps the contract


def test_a_winner_without_question_is_warned_about_in_the_log_row_record_and_report(tmp_path, caplog):
    note = "the winning prompt has no {question}: it sends the same text whatever each example's question asks"
    rows = run_engine(tmp_path, ManualOptimizer(["Ответь только значением."]), report=True).rows_by_key
    row = rows["passport Фамилия"]
    assert row["optimal prompt"] == "Ответь только значением." and note in row["status"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert f"pair 'passport Фамилия': {note} (1 question phrasing on train/val)" in warnings
    record = json.loads((tmp_path / "out" / "run.json").read_text(encoding="utf-8"))
    assert note in record["pairs"]["passport Фамилия"]["status"]
    report = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    assert "No {question} in the winning prompt of passport Фамилия" in report


def test_a_winner_with_question_gets_no_such_warning(tmp_path, caplog):
    rows = run_engine(tmp_path, ManualOptimizer(["{question} Ответь только значением."]), report=True).rows_by_key
    assert rows["passport Фамилия"]["status"] == "ok"
    assert not [r for r in caplog.records if "{question}" in r.getMessage() and r.levelno >= logging.WARNING]
    assert "No {question}" not in (tmp_path / "out" / "report.html").read_text(encoding="utf-8")


def test_a_failure_that_cannot_be_described_is_still_logged_with_its_reason(caplog):
    from types import SimpleNamespace

    from optimize.plugin_errors import log_pair_failure

    parts_without_an_optimizer = SimpleNamespace(model=ScriptedAnswerModel(), advisor=None)
    assert log_pair_failure("p", RuntimeError("boom"), parts_without_an_optimizer) == "RuntimeError: boom"
    assert _errors(caplog) == ["pair 'p' failed: RuntimeError: boom; in the engine (the run goes on)"]
