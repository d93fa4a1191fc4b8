"""TextGrad and DSPy plugins on our engine, with a scripted advisor and answer model (fast)."""

import importlib.util
import itertools
import json
import re

import pytest

from optimizers.textgrad_plugin import TextGradOptimizer, constraint_problem
from tasks.cer_metric import CerMetric
from tests.engine_harness import run_engine
from tests.scripted_advisor import ScriptedAdvisor
from tests.scripted_answer_model import ScriptedAnswerModel

# not importorskip: importing textgrad writes a log file into the working directory
if importlib.util.find_spec("textgrad") is None:
    pytest.skip("textgrad is not installed (scripts/setup.sh installs the 'compare' extra)", allow_module_level=True)


def textgrad_advisor(rewrites) -> ScriptedAdvisor:
    """Replies by the kind of request TextGrad makes: feedback for backward, a rewrite for TGD."""
    rewrites = list(rewrites)

    def reply(messages):
        if "IMPROVED_VARIABLE" in messages[0]["content"] + messages[-1]["content"]:
            return rewrites.pop(0) if rewrites else "no tags"
        return "The answers carry extra words; ask for the value only."

    return ScriptedAdvisor(reply, cost_usd=0.0)


def _failed_steps(caplog):
    """The textgrad plugin's failed steps, as it logs them (``step N: reason``)."""
    found = (re.search(r"textgrad step (\d+) failed \((.*)\); going on", r.getMessage()) for r in caplog.records)
    return [f"step {m.group(1)}: {m.group(2)}" for m in found if m]


def _run(tmp_path, optimizer, advisor, **kwargs):
    """``optimizer`` with ``advisor``; the scripted model answers exactly when the prompt says EXACT."""
    return run_engine(tmp_path, optimizer, advisor=advisor, model=ScriptedAnswerModel(exact_marker="EXACT"), **kwargs)


def test_textgrad_step_rewrites_through_our_advisor_and_keeps_only_a_better_prompt(tmp_path, monkeypatch):
    monkeypatch.delenv("TEXTGRAD_LOG_DIR", raising=False)
    monkeypatch.chdir(tmp_path)  # TextGrad's import-time log file must not land here
    advisor = textgrad_advisor([
        "Reasoning.\n<IMPROVED_VARIABLE>{question} Ответь только значением.</IMPROVED_VARIABLE>",  # no better
        "<IMPROVED_VARIABLE>{question} Только значение. EXACT</IMPROVED_VARIABLE>",  # perfect: kept
    ])
    optimizer = TextGradOptimizer(steps=3, minibatch=3, manual_candidates=())
    run = _run(tmp_path, optimizer, advisor)
    row = run.row
    assert row["optimal prompt"] == "{question} Только значение. EXACT" and row["author"] == "Scripted"
    assert row["val_cer"] == 0.0
    # two steps, each one backward (feedback) and one update call; val CER 0 then: no third step
    assert len(advisor.asked) == 4
    update = advisor.asked[1][0][-1]["content"]
    assert "{question}" in update and "Constraint 1" in update and "extra words" in update
    forward = [t for t in run.trials if t["split"] == "train" and t["origin"] == "textgrad-forward"]
    assert len(forward) == 2 and all(t["n"] == 3 for t in forward)  # each step answered a train minibatch
    assert not (tmp_path / "logs").exists()
    # what the plugin reported is what our evaluator says of that prompt on val
    from optimize.evaluator import Budget, Evaluator
    from prompt_opt_api import Prompt

    evaluator = Evaluator(run.model, run.store, CerMetric(), run.pair, Budget(None))
    rescored = evaluator.score(Prompt(row["optimal prompt"]), run.pair.val)
    assert rescored.cer == row["val_cer"]


def test_textgrad_reply_without_tags_or_breaking_constraints_is_a_failed_step(tmp_path, caplog):
    advisor = textgrad_advisor(["I think the prompt is fine.",  # no <IMPROVED_VARIABLE>: TextGrad's IndexError
                               "<IMPROVED_VARIABLE>Фамилия? EXACT</IMPROVED_VARIABLE>"])  # lost {question}
    optimizer = TextGradOptimizer(steps=2, minibatch=2)
    run = _run(tmp_path, optimizer, advisor)
    failed = _failed_steps(caplog)
    assert [f.split(":")[0] for f in failed] == ["step 1", "step 2"]
    assert "IndexError" in failed[0] and "placeholder" in failed[1]
    assert not any(t["origin"].startswith("textgrad:") for t in run.trials)  # nothing broken was scored
    assert run.row["status"].startswith("ok")


def test_textgrad_never_exceeds_the_answer_model_budget(tmp_path):
    advisor = textgrad_advisor(["<IMPROVED_VARIABLE>{question} Только значение, вариант %d.</IMPROVED_VARIABLE>" % i
                               for i in range(10)])
    run = _run(tmp_path, TextGradOptimizer(steps=10, minibatch=3, manual_candidates=()), advisor, budget=20)
    row = run.row
    assert row["answer_model_evaluations"] - row["n_test"] <= 20 and row["status"].startswith("ok")
    assert any(t["origin"].startswith("textgrad:") for t in run.trials)  # it did work until the budget ended


@pytest.mark.parametrize("candidate,problem", [
    ("{question} Только значение.", None),
    ("Фамилия? Только значение.", "lost the {question} placeholder"),
    ("{{question}} Только значение.", "other braces than {question}"),
    ("{question} {field} только", "other braces than {question}"),
    ("{question} Расскажи подробно.", "dropped the output-format clause"),
])
def test_textgrad_constraints_are_checked_before_scoring(candidate, problem):
    assert constraint_problem(candidate, had_format_clause=True) == problem


def dspy_advisor(instruction) -> ScriptedAdvisor:
    """Answers DSPy's proposer in its ChatAdapter format and GEPA's reflection in a code block;
    ``{n}`` in ``instruction`` becomes the call's number (a new instruction each call)."""
    calls = itertools.count(1)

    def reply(messages):
        text = instruction.format(n=next(calls))
        system = messages[0]["content"] if messages[0]["role"] == "system" else ""
        fields = re.findall(r"\d+\. `(\w+)`", system.split("Your output fields are:", 1)[-1]) if system else []
        if fields and "JSON" in system:  # GEPA's proposer reads JSON (DSPy's JSONAdapter)
            return json.dumps({f: text for f in fields}, ensure_ascii=False)
        if fields:
            return "\n\n".join(f"[[ ## {f} ## ]]\n{text}" for f in fields) + "\n\n[[ ## completed ## ]]"
        return f"```\n{text}\n```"

    return ScriptedAdvisor(reply, cost_usd=0.0)


@pytest.mark.parametrize("method,settings", [
    ("mipro", {"num_candidates": 2, "num_trials": 2}),
    ("gepa", {"max_metric_calls": 12, "reflection_minibatch_size": 2}),
])
def test_dspy_search_runs_on_our_evaluator_and_its_result_is_what_we_score(tmp_path, method, settings):
    from optimize.evaluator import Budget, Evaluator
    from optimizers.dspy_plugin import DspyOptimizer
    from prompt_opt_api import Prompt

    pytest.importorskip("dspy")
    advisor = dspy_advisor("Ответь только значением поля. EXACT")
    optimizer = DspyOptimizer(method=method, manual_candidates=(), **settings)
    run = _run(tmp_path, optimizer, advisor)
    row = run.row
    assert advisor.asked, "DSPy never asked the advisor"
    assert row["optimal prompt"] == "{question} Ответь только значением поля. EXACT", row
    assert row["author"] == "Scripted" and row["val_cer"] == 0.0 and row["optimizer"] == f"dspy-{method}"
    # DSPy's own scores are single examples: val-subset, never full val
    dspy_scores = [t for t in run.trials if t["origin"].startswith("dspy:") and t["split"] != "test"]
    assert any(t["split"] == "val-subset" or t["n"] == 1 for t in dspy_scores)
    evaluator = Evaluator(run.model, run.store, CerMetric(), run.pair, Budget(None))
    rescored = evaluator.score(Prompt(row["optimal prompt"]), run.pair.val)
    assert rescored.cer == row["val_cer"]


@pytest.mark.parametrize("method", ["gepa", "mipro"])
def test_dspy_never_exceeds_the_answer_model_budget_and_keeps_its_best(tmp_path, method, caplog):
    from optimizers.dspy_plugin import DspyOptimizer

    caplog.set_level("INFO", logger="optimizers.dspy_plugin")
    advisor = dspy_advisor("Ответь значением поля, вариант {n}.")  # never perfect: the search goes on
    optimizer = DspyOptimizer(method=method, max_metric_calls=500, num_candidates=12, num_trials=40, reserve=3)
    run = _run(tmp_path, optimizer, advisor, budget=40)
    row = run.row
    stopped = [r.getMessage() for r in caplog.records if "stopped early" in r.getMessage()]
    assert stopped and "budget" in stopped[0]  # our budget stopped GEPA, not its own count
    assert any(t["origin"].startswith("dspy:") and t["split"] == "val" for t in run.trials)  # its result, on full val
    assert row["answer_model_evaluations"] - row["n_test"] <= 40 and row["status"].startswith("ok")


def test_textgrad_step_repeating_an_earlier_request_gets_a_new_reply(tmp_path, caplog):
    # minibatch >= train: every step answers the same examples; after a failed step the
    # request is byte-identical, and a cached reply would repeat the failure forever
    advisor = textgrad_advisor(["no tags at all", "<IMPROVED_VARIABLE>{question} Только значение. EXACT</IMPROVED_VARIABLE>"])
    optimizer = TextGradOptimizer(steps=2, minibatch=50, manual_candidates=())
    row = _run(tmp_path, optimizer, advisor).row
    failed = _failed_steps(caplog)
    assert failed and failed[0].startswith("step 1")
    assert row["optimal prompt"] == "{question} Только значение. EXACT"


class UnreachableModel(ScriptedAnswerModel):
    """Answers the seeds, then its endpoint goes away (as a server that died mid-run)."""

    def __init__(self, answers_before_dying):
        super().__init__(exact_marker="EXACT")
        self.left = answers_before_dying

    def answer(self, batch):
        from prompt_opt_api import EndpointUnreachable

        self.left -= len(batch)
        if self.left < 0:
            raise EndpointUnreachable("answer model at http://127.0.0.1:9/v1 is unreachable: start it")
        return super().answer(batch)


@pytest.mark.parametrize("method", ["mipro", "gepa"])
def test_dspy_does_not_swallow_a_dead_answer_model(tmp_path, method):
    from optimizers.dspy_plugin import DspyOptimizer
    from prompt_opt_api import EndpointUnreachable

    model = UnreachableModel(answers_before_dying=4)  # the baseline's 3 val answers, then one more
    advisor = dspy_advisor("Вариант {n}: только значение.")
    with pytest.raises(EndpointUnreachable):
        run_engine(tmp_path, DspyOptimizer(method=method, num_trials=3, max_metric_calls=30), model=model,
                   advisor=advisor)
    assert model.left >= -8  # stopped at the first failures, not after every remaining trial


def test_textgrad_keeps_nothing_on_the_optimizer_from_one_pair_to_the_next(tmp_path, caplog):
    # every step of both pairs fails (no tags): what a pair learned must not stay on the optimizer
    optimizer = TextGradOptimizer(steps=2, minibatch=2, manual_candidates=())
    before = dict(vars(optimizer))
    summary = _run(tmp_path, optimizer, textgrad_advisor([]), two_pairs=True).summary
    assert len(summary.rows) == 2 and len(_failed_steps(caplog)) == 4  # both pairs did fail
    assert vars(optimizer) == before


def test_dspy_keeps_nothing_on_the_optimizer_from_one_pair_to_the_next(tmp_path, caplog):
    from optimizers.dspy_plugin import DspyOptimizer

    pytest.importorskip("dspy")
    caplog.set_level("INFO", logger="optimizers.dspy_plugin")
    optimizer = DspyOptimizer(method="gepa", max_metric_calls=500, reserve=3)
    before = dict(vars(optimizer))
    summary = _run(tmp_path, optimizer, dspy_advisor("Вариант {n}."), budget=30, two_pairs=True).summary
    assert len(summary.rows) == 2
    assert sum("stopped early" in r.getMessage() for r in caplog.records) == 2  # each pair's budget stopped it
    assert vars(optimizer) == before
