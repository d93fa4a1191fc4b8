"""What a `chain` step can reach through its `StepEvaluatorView` and the advisor it is handed: each
attack has an honest counterpart that still works."""

import itertools
import threading

from optimizers.answer_shape_step import AnswerShapeStep
from optimizers.chain import ChainOptimizer
from prompt_opt_api import BudgetExhausted, Optimizer, Prompt
from tests.engine_harness import run_engine
from tests.scripted_advisor import ScriptedAdvisor
from tests.scripted_answer_model import ScriptedAnswerModel


def _run(tmp_path, chain, **kwargs):
    return run_engine(tmp_path, chain, model=ScriptedAnswerModel(exact_marker="EXACT"), **kwargs)


class ShortList(list):
    """A list that says it holds one item, whatever it holds."""

    def __len__(self):
        return 1


class Races(Optimizer):
    """Races ``n`` prompts on full val at once (``lie``: in a list that says it holds one)."""

    name = "races"

    def __init__(self, n, lie):
        self.n, self.lie = n, lie

    def optimize(self, pair, evaluator, advisor):
        prompts = [Prompt(f"{{question}} variant {i}") for i in range(self.n)]
        evaluator.race(ShortList(prompts) if self.lie else prompts, pair.val)
        return []


class ScoresOne(Optimizer):
    """Scores one prompt of its own on full val."""

    name = "scores_one"

    def optimize(self, pair, evaluator, advisor):
        evaluator.score(Prompt("{question} EXACT"), pair.val)
        return []


def _variants_scored(run):
    return [t for t in run.trials if t["split"] == "val" and "variant" in t["prompt"]]


def test_a_step_cannot_spend_beyond_its_share_with_a_sequence_that_lies_about_its_length(tmp_path):
    # the share is 12 evaluations (4 prompts on 3 val pages): 8 prompts said to be 1 are refused
    chain = ChainOptimizer({"s1": Races(8, lie=True), "s2": ScoresOne()}, budget_shares=[0.5])
    run = _run(tmp_path / "lies", chain, budget=24)
    assert _variants_scored(run) == []
    assert [t["prompt"] for t in run.trials if t["split"] == "val" and "EXACT" in t["prompt"]] == ["{question} EXACT"]


def test_a_step_that_races_within_its_share_scores_every_prompt(tmp_path):
    chain = ChainOptimizer({"s1": Races(4, lie=False), "s2": ScoresOne()}, budget_shares=[0.5])
    run = _run(tmp_path, chain, budget=24)
    assert len(_variants_scored(run)) == 4 and run.row["cer"] == 0.0  # the next step still had its share


class ReadsOtherwiseLater(list):
    """Val examples that are another list the first time they are read (the first page twice, the
    last left out) and the whole val split each time after."""

    reads = 0

    def __iter__(self):
        self.reads += 1
        whole = list(super().__iter__())
        return iter([whole[0], *whole[:-1]] if self.reads == 1 else whole)


class ScoresOn(Optimizer):
    name = "scores_on"

    def __init__(self, forged, reverse=False):
        self.forged, self.reverse = forged, reverse

    def optimize(self, pair, evaluator, advisor):
        val = pair.val[::-1] if self.reverse else pair.val
        evaluator.score(Prompt("{question} forged"), ReadsOtherwiseLater(val) if self.forged else val)
        return []


class Records(Optimizer):
    name = "records"

    def __init__(self, started_from):
        self.started_from = started_from

    def optimize(self, pair, evaluator, advisor):
        self.started_from.extend(p.text for p in self.starting_prompts)
        return []


def test_a_score_on_part_of_val_is_not_handed_on_as_a_full_val_one_by_examples_read_otherwise_later(tmp_path):
    started_from = []
    _run(tmp_path / "forged", ChainOptimizer({"s1": ScoresOn(True), "s2": Records(started_from)}), budget=30)
    assert started_from == []  # nothing was scored on the whole val split
    _run(tmp_path / "honest", ChainOptimizer({"s1": ScoresOn(False), "s2": Records(started_from)}), budget=30)
    assert started_from == ["{question} forged"]


class RacesTwo(Optimizer):
    name = "races_two"

    def optimize(self, pair, evaluator, advisor):
        evaluator.race([Prompt("{question} variant"), Prompt("{question} EXACT")], pair.val)
        return []


def test_the_best_full_val_score_a_race_gave_is_handed_on(tmp_path):
    started_from = []
    _run(tmp_path, ChainOptimizer({"s1": RacesTwo(), "s2": Records(started_from)}), budget=30)
    assert started_from == ["{question} EXACT"]


def test_a_full_val_score_in_another_order_is_handed_on(tmp_path):
    # the engine counts it as a full-val score (it may win): the next step starts from it too
    started_from = []
    run = _run(tmp_path, ChainOptimizer({"s1": ScoresOn(False, reverse=True), "s2": Records(started_from)}), budget=30)
    assert [t["split"] for t in run.trials if t["prompt"] == "{question} forged"] == ["val"]
    assert started_from == ["{question} forged"]


class ScoresFromThreads(Optimizer):
    """Scores ``n`` prompts on full val from ``n`` threads at once: each prompt's text is read (by the
    evaluator, before it charges) only once every thread has been let in or refused, so every request
    that passes the share's check is in flight together."""

    name = "threads"

    def __init__(self, n):
        self.n = n

    def optimize(self, pair, evaluator, advisor):
        settled, go, armed = threading.Semaphore(0), threading.Event(), threading.Event()

        class ReadLate(Prompt):
            def __getattribute__(self, name):
                if name == "text" and armed.is_set() and not go.is_set():
                    settled.release()
                    go.wait(10)
                return super().__getattribute__(name)

        def one(prompt):
            try:
                evaluator.score(prompt, pair.val)
            except BudgetExhausted:
                settled.release()

        threads = [threading.Thread(target=one, args=(ReadLate(f"{{question}} variant {i}"),)) for i in range(self.n)]
        armed.set()
        for thread in threads:
            thread.start()
        for _ in threads:
            settled.acquire(timeout=10)
        go.set()
        for thread in threads:
            thread.join()
        return []


def test_threads_of_a_step_cannot_spend_beyond_its_share_together(tmp_path):
    # the share is 3 evaluations (one prompt on the 3 val pages): the other threads are refused
    chain = ChainOptimizer({"s1": ScoresFromThreads(4), "s2": ScoresOne()}, budget_shares=[0.25])
    run = _run(tmp_path, chain, budget=12)
    assert len(_variants_scored(run)) == 1
    assert run.row["cer"] == 0.0  # the next step still had the rest


def test_threads_of_a_step_within_its_share_all_score(tmp_path):
    chain = ChainOptimizer({"s1": ScoresFromThreads(2), "s2": ScoresOne()}, budget_shares=[0.5])
    run = _run(tmp_path, chain, budget=12)
    assert len(_variants_scored(run)) == 2 and run.row["cer"] == 0.0


class SpendsAll(Optimizer):
    """Scores new prompts on full val until the evaluator refuses one (``BudgetExhausted`` escapes)."""

    name = "spends_all"

    def optimize(self, pair, evaluator, advisor):
        for i in itertools.count():
            evaluator.score(Prompt(f"{{question}} spent {i}"), pair.val)


class Asks(Optimizer):
    """Asks the advisor once whenever it has one (``declared``: says so in ``uses_advisor``)."""

    name = "asks"

    def __init__(self, declared):
        self.uses_advisor = declared

    def optimize(self, pair, evaluator, advisor):
        if advisor is not None:
            advisor.complete([{"role": "user", "content": f"{self.uses_advisor}"}])
        return []


def _asked(advisor):
    return [messages[-1]["content"] for messages, _, _ in advisor.asked]


def test_a_chain_step_that_does_not_declare_the_advisor_gets_none_so_none_is_asked_after_the_budget(tmp_path):
    advisor = ScriptedAdvisor(["x"])
    chain = ChainOptimizer({"s1": SpendsAll(), "s2": Asks(declared=False), "s3": Asks(declared=True)})
    run_engine(tmp_path, chain, advisor=advisor, budget=12)
    assert _asked(advisor) == []  # the budget is spent: the declared step is skipped, the other has no advisor


def test_a_chain_step_that_declares_the_advisor_gets_it(tmp_path):
    advisor = ScriptedAdvisor(["x"])
    chain = ChainOptimizer({"s1": ScoresOne(), "s2": Asks(declared=True)})
    run_engine(tmp_path, chain, advisor=advisor, budget=12)  # budget left after the first step
    assert _asked(advisor) == ["True"]


def test_a_nested_chain_still_runs_its_free_step_after_the_pairs_budget_is_spent(tmp_path):
    # the nested chain asks the advisor in one step: that step is skipped, not the whole nested chain
    advisor = ScriptedAdvisor(["x"])
    inner = ChainOptimizer({"a": Asks(declared=True), "b": AnswerShapeStep()})
    run = run_engine(tmp_path, ChainOptimizer({"s1": SpendsAll(), "s2": inner}), advisor=advisor, budget=12)
    trimmed = [t for t in run.trials if t.get("answer_max_chars")]
    assert trimmed and all(t["evaluations_so_far"] == 12 for t in trimmed) and _asked(advisor) == []


def test_a_chain_step_that_asks_the_advisor_is_skipped_when_its_own_share_is_nothing(tmp_path):
    # 1 % of 12 evaluations is none: no prompt the advisor wrote could be scored on that share
    advisor = ScriptedAdvisor(["x"])
    chain = ChainOptimizer({"s1": ScoresOne(), "s2": Asks(declared=True), "s3": ScoresOne()}, budget_shares=[0.5, 0.01])
    run_engine(tmp_path / "none", chain, advisor=advisor, budget=12)
    assert _asked(advisor) == []
    chain = ChainOptimizer({"s1": ScoresOne(), "s2": Asks(declared=True), "s3": ScoresOne()}, budget_shares=[0.5, 0.25])
    run_engine(tmp_path / "some", chain, advisor=advisor, budget=12)
    assert _asked(advisor) == ["True"]


def test_a_free_step_with_a_share_still_scores_after_the_pairs_budget_is_spent(tmp_path):
    # step 1 may spend the whole budget; the answer-shape step's share (1 evaluation) could not pay for
    # one val score, but its scores are the same answers (no charge); the last step's new prompt is refused
    chain = ChainOptimizer({"s1": SpendsAll(), "s2": AnswerShapeStep(), "s3": ScoresOne()}, budget_shares=[1.0, 0.1])
    run = run_engine(tmp_path, chain, model=ScriptedAnswerModel(exact_marker="never"), budget=12)
    trimmed = [t for t in run.trials if t.get("answer_max_chars")]
    assert trimmed and all(t["evaluations_so_far"] == 12 for t in trimmed)
    assert not [t for t in run.trials if "EXACT" in t["prompt"]]
    assert max(t["evaluations_so_far"] for t in run.trials) == 12  # the pair's budget, no more
