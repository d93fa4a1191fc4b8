"""Unit tests of the prompt-writing optimizers with a scripted advisor and answer model."""

import dataclasses
import itertools

import pytest

from optimize.advisor_session import AdvisorSession
from optimize.answer_store import AnswerStore
from optimize.evaluator import Budget, Evaluator
from optimizers.advisor import AdvisorOptimizer
from optimizers.answer_shape_step import AnswerShapeStep
from optimizers.chain import ChainOptimizer
from optimizers.critic import CriticOptimizer
from optimizers.fewshot import FewShotOptimizer
from optimizers.mistakes import classify_mistake
from optimizers.prompt_edits import answer_profile, rule_edits, shape
from optimizers.prompt_pool import ask_for_prompts, parse_prompts
from prompt_opt_api import (
    DATASET_QUESTION,
    MANUAL,
    AdvisorBudgetExhausted,
    AdvisorError,
    Optimizer,
    Prompt,
    Provenance,
)
from prompt_opt_api.answer_shape import AnswerShapes
from tasks.cer_metric import CerMetric
from tests.engine_harness import one_pair, run_engine
from tests.scripted_advisor import ScriptedAdvisor
from tests.scripted_answer_model import ScriptedAnswerModel


def test_parse_prompts_is_lenient_but_clean():
    reply = ('Analysis...\n<prompt>"{question} Только значение."</prompt>\n<PROMPT>```Поле: {question}```</PROMPT>'
             "\n<prompt></prompt><prompt>" + "x" * 700 + "</prompt>\n<prompt>unclosed last {question}")
    assert parse_prompts(reply) == ["{question} Только значение.", "Поле: {question}", "unclosed last {question}"]
    assert parse_prompts("no tags at all") == [] and parse_prompts("") == []


def test_answer_profiles_and_format_hints():
    assert shape("123-456-789 01") == "999-999-999 99" and shape("К918ТЕ36") == "Я999ЯЯ99"
    dates = answer_profile(["01.02.2003", "11.12.1999"])
    assert dates.all_dates and "ДД.ММ.ГГГГ" in dates.format_hint()
    snils = answer_profile(["123-456-789 01", "987-654-321 00"])
    assert "999-999-999 99" in snils.format_hint()
    names = answer_profile(["ИВАНОВ", "ПЕТРОВА"])
    assert names.upper and names.has_cyrillic and "заглавными русскими" in names.format_hint()
    assert answer_profile([]).format_hint() is None


@pytest.mark.parametrize("expected,answered,kind", [
    ("ИВАНОВ", "", "empty"),
    ("ИВАНОВ", "Фамилия: ИВАНОВ", "extra words"),
    ("ИВАНОВ", "ИВАН", "truncated"),
    ("К918ТЕ36", "K918TE36", "Latin/Cyrillic look-alikes"),
    ("01.02.2003", "01/02/2003", "date or number format"),
    ("ИВАНОВ", "1999", "wrong field"),
])
def test_mistakes_are_classified(expected, answered, kind):
    assert classify_mistake(expected, answered) == kind


def test_rule_edits_add_each_clause_once_and_skip_what_is_said(tmp_path):
    pair = one_pair(tmp_path)
    edits = rule_edits(Prompt("{question}"), pair.train)
    origins = [p.origin for p in edits]
    assert origins[:2] == ["rule:value-only", "rule:copy-exactly"] and "rule:all" in origins
    assert len({p.text for p in edits}) == len(edits)
    already = rule_edits(Prompt("{question} Ответь только значением поля."), pair.train)
    assert "rule:value-only" not in [p.origin for p in already]
    only = rule_edits(Prompt("{question}"), pair.train, kinds=("all",))
    assert [p.origin for p in only] == ["rule:all"]


def test_ask_for_prompts_dedupes_corrects_and_reasks_hotter():
    advisor = ScriptedAdvisor(["no tags here", "<prompt>A {question}</prompt>",  # corrected on the second turn
                               "<prompt>A {question}</prompt><prompt>a  {QUESTION}</prompt>",  # repeats only
                               "<prompt>B {question}</prompt>"])
    known = {"{question}"}
    got = ask_for_prompts(advisor, [{"role": "user", "content": "x"}], n=2, sample_base=10, known=known,
                          temperature=0.5, max_reasks=2)
    assert got.prompts == ["A {question}", "B {question}"] and got.unusable_replies == 0
    temps_samples = [(t, s) for _, t, s in advisor.asked]
    assert temps_samples == [(0.5, 10), (0.5, 10), (0.8, 11), (1.1, 12)]
    assert "a {question}" in known and "b {question}" in known


def test_ask_for_prompts_counts_unusable_and_failed_and_stops_on_budget():
    advisor = ScriptedAdvisor(["nothing", "still nothing", AdvisorError("500 x3"), AdvisorBudgetExhausted("spent")])
    got = ask_for_prompts(advisor, [{"role": "user", "content": "x"}], n=2, sample_base=0, known=set(), max_reasks=3)
    assert (got.prompts, got.unusable_replies, got.failed_calls, got.budget_spent) == ([], 1, 1, True)
    assert advisor.usage.unusable_replies == 1


def _run(tmp_path, optimizer, advisor, **kwargs):
    """``optimizer`` with ``advisor``; the scripted model answers exactly when the prompt says EXACT."""
    return run_engine(tmp_path, optimizer, advisor=advisor, model=ScriptedAnswerModel(exact_marker="EXACT"), **kwargs)


def test_advisor_optimizer_scores_its_proposals_and_credits_the_advisor(tmp_path):
    advisor = ScriptedAdvisor(["<prompt>{question} EXACT</prompt><prompt>Поле {question}</prompt>"])
    run = _run(tmp_path, AdvisorOptimizer(n_candidates=2, max_reasks=0), advisor)
    row = run.row
    assert row["optimal prompt"] == "{question} EXACT" and row["author"] == "Scripted" and row["cer"] == 0.0
    assert row["advisor_calls"] == 1 and run.advisor.usage.calls == 1
    meta = advisor.asked[0][0][1]["content"]
    assert "Scripted-VLM" in meta and "passport" in meta and "Фамилия" in meta  # model, class, field told
    train_answers = {t["predictions"][0]["answer"] for t in run.trials if t["split"] == "train"}
    assert train_answers and all(a in meta for a in train_answers)


def test_critic_rounds_show_scores_and_mistakes_and_stop_without_progress(tmp_path):
    advisor = ScriptedAdvisor(["<prompt>Поле A {question}</prompt>", "<prompt>Поле B {question}</prompt>",
                               "<prompt>Поле C {question}</prompt>"])
    critic = CriticOptimizer(rounds=5, patience=2, per_round=1, max_reasks=0, rule_edits=False)
    run = _run(tmp_path, critic, advisor)
    assert len(advisor.asked) == 2  # two rounds without improvement, then patience stops it
    second = advisor.asked[1][0][1]["content"]
    assert "CER" in second and "<prompt>{question}</prompt>" in second and "(truncated)" in second
    assert run.row["optimal prompt"] == "{question}"  # nothing beat the baseline


def test_critic_asks_for_prompts_only_when_analysis_is_off(tmp_path):
    """A small advisor spends its reply on the analysis: analysis=False asks for the prompts alone."""
    requests = {}
    for analysis in (True, False):
        advisor = ScriptedAdvisor(["<prompt1>Поле A {question}</prompt1>"])
        critic = CriticOptimizer(rounds=1, per_round=1, max_reasks=0, rule_edits=False, analysis=analysis)
        _run(tmp_path / str(analysis), critic, advisor)
        requests[analysis] = advisor.asked[0][0][1]["content"]
    assert "two sentences of analysis" in requests[True] and "two sentences of analysis" not in requests[False]
    assert "Write nothing but 1 new prompts" in requests[False]


def test_critic_spends_no_advisor_call_when_val_is_already_perfect(tmp_path):
    advisor = ScriptedAdvisor(["<prompt>x {question}</prompt>"])
    critic = CriticOptimizer(rounds=3, per_round=1, rule_edits=False, manual_candidates=["{question} EXACT"])
    run = _run(tmp_path, critic, advisor)
    assert advisor.asked == [] and run.row["cer"] == 0.0


def test_fewshot_picks_demos_from_train_and_chain_passes_the_winner_on(tmp_path):
    advisor = ScriptedAdvisor(["<prompt>{question} EXACT</prompt>"])
    chain = ChainOptimizer({"1_advisor": AdvisorOptimizer(n_candidates=1, max_reasks=0),
                            "s2_fewshot": FewShotOptimizer(k=2, random_sets=2, swap_candidates=1)})
    assert chain.uses_advisor and chain.name == "chain(advisor,fewshot)"
    run = _run(tmp_path, chain, advisor)
    with_demos = [t for t in run.trials if t["n_demos"]]
    assert with_demos and all(t["prompt"] == "{question} EXACT" for t in with_demos)  # the winner, with demos
    train_rows = {p["row"] for t in run.trials if t["split"] == "train" for p in t["predictions"]}
    assert all(set(t["demo_rows"]) <= train_rows | set(t["demo_rows"]) for t in with_demos)
    assert run.row["cer"] == 0.0


def test_chain_budget_shares_leave_the_later_steps_their_part(tmp_path):
    # the critic's rule edits would spend the whole budget: a 50 % share leaves fewshot the rest
    def chain(shares):
        return ChainOptimizer({"s1_critic": CriticOptimizer(rounds=0, rule_edits=True),
                               "s2_fewshot": FewShotOptimizer(k=1, random_sets=3, swap_candidates=0)},
                              budget_shares=shares)

    greedy_trials = _run(tmp_path / "a", chain(None), ScriptedAdvisor(["x"]), budget=20).trials
    assert not any(t["n_demos"] for t in greedy_trials)  # nothing left for the demos
    run = _run(tmp_path / "b", chain([0.5]), ScriptedAdvisor(["x"]), budget=20)
    assert any(t["n_demos"] for t in run.trials)  # fewshot ran on its share
    critic_spent = max(t["evaluations_so_far"] for t in run.trials if t["n_demos"] == 0 and t["split"] != "test")
    assert critic_spent <= 10 and run.row["answer_model_evaluations"] - run.row["n_test"] <= 20
    with pytest.raises(ValueError, match="budget_shares"):
        chain([1.5])


class ScoresUntilRefused(Optimizer):
    """A plugin that scores prompts on full val until its evaluator raises ``BudgetExhausted`` (it
    does not catch it, as a TextGrad or DSPy loop would not); the second is the best."""

    name = "until_refused"

    def optimize(self, pair, evaluator, advisor):
        for i in itertools.count():
            evaluator.score(Prompt("{question} EXACT" if i == 1 else f"{{question}} variant {i}"), pair.val)


def test_a_chain_step_refused_by_its_share_hands_its_best_on_to_the_next_step(tmp_path):
    chain = ChainOptimizer({"s1": ScoresUntilRefused(),
                            "s2": FewShotOptimizer(k=1, random_sets=2, swap_candidates=0)}, budget_shares=[0.5])
    run = _run(tmp_path, chain, None, budget=24)
    with_demos = [t for t in run.trials if t["n_demos"]]
    assert with_demos, "the second step did not run after the first one's share ran out"
    assert {t["prompt"] for t in with_demos} == {"{question} EXACT"}  # the first step's best, as it scored it


def test_the_next_chain_step_starts_from_what_the_evaluator_scored_not_from_what_a_step_returns(tmp_path):
    from prompt_opt_api import Score, Trial

    class Boasts(Optimizer):  # scores one prompt, returns a made-up perfect score for another
        name = "boasts"

        def optimize(self, pair, evaluator, advisor):
            real = evaluator.score(Prompt("Поле: {question}"), pair.val)
            return [Trial(Prompt("{question} never scored"), "val", Score(0.0, 1.0, real.results))]

    started_from = []

    class Records(Optimizer):
        name = "records"

        def optimize(self, pair, evaluator, advisor):
            started_from.extend(p.text for p in self.starting_prompts)
            return []

    _run(tmp_path, ChainOptimizer({"s1": Boasts(), "s2": Records()}), None, budget=30)
    assert started_from == ["Поле: {question}"]


def test_a_free_step_still_runs_after_the_pairs_budget_is_spent(tmp_path):
    # step 1 spends the whole budget and raises; the answer-shape step scores the same answers for free
    chain = ChainOptimizer({"s1": ScoresUntilRefused(), "s2": AnswerShapeStep()})
    run = run_engine(tmp_path, chain, model=ScriptedAnswerModel(exact_marker="never"), budget=12)
    trimmed = [t for t in run.trials if t.get("answer_max_chars")]
    assert trimmed and all(t["evaluations_so_far"] == 12 for t in trimmed)  # the same answers: no charge


def test_a_chain_step_that_asks_the_advisor_is_skipped_once_the_pairs_budget_is_spent(tmp_path):
    started = []

    class AsksFirst(Optimizer):  # would ask the advisor before scoring anything
        name, uses_advisor = "asks_first", True

        def optimize(self, pair, evaluator, advisor):
            started.append(pair.key)
            return []

    chain = ChainOptimizer({"s1": ScoresUntilRefused(), "s2": AsksFirst()})
    _run(tmp_path / "spent", chain, ScriptedAdvisor(["x"]), budget=12)
    assert started == []
    shared = ChainOptimizer({"s1": ScoresUntilRefused(), "s2": AsksFirst()}, budget_shares=[0.5])
    _run(tmp_path / "left", shared, ScriptedAdvisor(["x"]), budget=24)  # step 1's share spent, not the pair's
    assert len(started) == 1


def test_chain_plan_keeps_one_text_with_another_trim_apart():
    prompt = Prompt("{question}")
    cut = dataclasses.replace(prompt, answer_shapes=AnswerShapes((), 5))

    class Knows(Optimizer):
        name = "knows"

        def __init__(self, prompts):
            self.prompts = prompts

        def known_prompts(self, pair):
            return self.prompts

        def optimize(self, pair, evaluator, advisor):
            return []

    chain = ChainOptimizer({"s1": Knows([prompt]), "s2": Knows([cut, Prompt(" {question} ")])})
    assert chain.known_prompts(None) == [prompt, cut]


def test_the_plan_counts_a_trimmed_prompts_answers_once_and_charges_it_no_whole_val(tmp_path):
    from optimize.plan import make_plan

    pair = one_pair(tmp_path)
    prompt, other = Prompt("{question}"), Prompt("Поле: {question}")
    cut = dataclasses.replace(prompt, answer_shapes=AnswerShapes((), 5))

    class Knows(Optimizer):
        name = "knows"

        def known_prompts(self, pair):
            return [prompt, cut, other]

        def optimize(self, pair, evaluator, advisor):
            return []

    n = len(pair.val)
    for budget in (None, 2 * n):  # two whole-val scores pay for all three: the trim sends no request
        plan = make_plan([pair], [], ScriptedAnswerModel(), Knows(), None, None, max_evaluations_per_pair=budget)
        assert plan.known == (0, 2 * n), budget


def test_advisor_replies_are_cached_and_budgeted_by_logical_calls(tmp_path):
    store = AnswerStore(tmp_path / "s.sqlite")
    first = AdvisorSession(ScriptedAdvisor(["one", "two"]), store, max_calls=2)
    msgs = [{"role": "user", "content": "q"}]
    assert first.complete(msgs, sample=0) == "one" and first.complete(msgs, sample=1) == "two"
    with pytest.raises(AdvisorBudgetExhausted):
        first.complete(msgs, sample=2)
    inner = ScriptedAdvisor(["fresh"])
    again = AdvisorSession(inner, store, max_calls=2)  # a resumed run: same requests, from the store
    assert again.complete(msgs, sample=0) == "one" and again.complete(msgs, sample=1) == "two"
    assert inner.asked == [] and again.usage.cached_calls == 2 and again.usage.calls == 0
    assert again.charges().usd == pytest.approx(0.002) and again.usage.cost_usd == 0.0
    with pytest.raises(AdvisorBudgetExhausted):  # cached calls count: the same decision as before
        again.complete(msgs, sample=2)


def test_provenance_labels_keep_the_origin_style_and_derived_prompts_keep_the_author():
    critic = Provenance("critic", "GPT4o", "round2")
    assert critic.label == "critic:GPT4o/round2" and Provenance("advisor", "DeepSeek").label == "advisor:DeepSeek"
    assert DATASET_QUESTION.label == "dataset-question" and DATASET_QUESTION.author == "dataset"
    assert Provenance("rule", "rule", "format").label == "rule:format" and MANUAL.label == "manual"
    with_demos = critic.derived("fewshot")
    assert with_demos.label == "critic:GPT4o/round2+fewshot" and with_demos.author == "GPT4o"
    assert with_demos.parent == critic
    assert Provenance("textgrad", "GPT4o", "forward").label == "textgrad-forward"
    # bookkeeping only: the answer-cache key of a prompt does not change with who wrote it
    assert Prompt("{question} x", provenance=critic).identity() == Prompt("{question} x").identity()


def test_hand_written_candidates_are_credited_to_manual_by_every_optimizer_that_takes_them(tmp_path):
    from optimizers.manual import ManualOptimizer

    pair = one_pair(tmp_path)
    hand = ["{question} Кратко."]
    for optimizer in (ManualOptimizer(hand), AdvisorOptimizer(manual_candidates=hand),
                      FewShotOptimizer(manual_candidates=hand)):
        (prompt,) = [p for p in optimizer.known_prompts(pair) if p.text == hand[0]]
        assert prompt.provenance == MANUAL, type(optimizer).__name__
    per_pair = ManualOptimizer(per_pair={pair.key: ["Опиши."]}).known_prompts(pair)[-1]
    assert (per_pair.provenance.author, per_pair.origin) == ("manual", "manual:per-pair")


def test_critic_stops_asking_once_the_run_made_its_advisor_calls(tmp_path):
    advisor = ScriptedAdvisor(["<prompt>Поле A {question}</prompt>", "<prompt>Поле B {question}</prompt>"])
    critic = CriticOptimizer(rounds=3, patience=5, per_round=1, max_reasks=0, rule_edits=False,
                             max_run_advisor_calls=2)
    summary = _run(tmp_path, critic, advisor, two_pairs=True).summary
    assert len(advisor.asked) == 2
    assert [r["advisor_calls"] for r in summary.rows] == [2, 0]  # the second pair got its starting prompts only


def test_critic_shows_the_worst_pages_to_advisors_that_read_images(tmp_path):
    advisor = ScriptedAdvisor(["<prompt>Поле {question}</prompt>"])
    advisor.accepts_images = True
    critic = CriticOptimizer(rounds=1, per_round=1, rule_edits=False, show_images=True, max_images=2)
    _run(tmp_path, critic, advisor)
    content = advisor.asked[0][0][1]["content"]
    assert isinstance(content, list) and content[0]["type"] == "text"
    images = [part for part in content if part["type"] == "image_url"]
    assert len(images) == 2 and images[0]["image_url"]["url"].startswith("data:image/jpeg;base64,")

    blind = ScriptedAdvisor(["<prompt>Поле {question}</prompt>"])  # accepts_images False: text only
    _run(tmp_path / "b", CriticOptimizer(rounds=1, per_round=1, rule_edits=False, show_images=True), blind)
    assert isinstance(blind.asked[0][0][1]["content"], str)


def test_rule_edits_leave_the_advisor_a_round_of_budget(tmp_path):
    advisor = ScriptedAdvisor(["<prompt>{question} EXACT</prompt>"])
    critic = CriticOptimizer(rounds=1, per_round=1, max_reasks=0)  # six rule edits would eat the budget
    run = _run(tmp_path, critic, advisor, budget=4 * 3 + 4)  # 3 val, 4 train
    assert len(advisor.asked) == 1 and run.row["optimal prompt"] == "{question} EXACT"
    assert sum("rule:" in t["origin"] for t in run.trials) == 2  # baseline + 2 edits, then the advisor


def test_edits_keep_the_base_author_and_advisor_is_not_asked_when_nothing_could_be_scored(tmp_path):
    critic_prompt = Prompt("{question}", provenance=Provenance("critic", "GPT4o", "round1"))
    edits = {p.origin: p.provenance.author for p in rule_edits(critic_prompt, one_pair(tmp_path / "p").train)}
    assert edits["critic:GPT4o/round1+rule:all"] == "GPT4o"
    manual = rule_edits(Prompt("{question}", provenance=MANUAL), one_pair(tmp_path / "q").train, kinds=("value-only",))
    assert [(p.origin, p.provenance.author) for p in manual] == [("manual+rule:value-only", "manual")]
    advisor = ScriptedAdvisor(["<prompt>{question} EXACT</prompt>"])
    # budget: the baseline and one seed on val (3 + 3) and nothing more
    _run(tmp_path, AdvisorOptimizer(n_candidates=2, manual_candidates=["Поле {question}"]), advisor, budget=7)
    assert advisor.asked == []


def test_panel_members_take_turns_share_the_budget_and_are_credited(tmp_path):
    from models.advisor_panel import AdvisorPanel

    writer_a = ScriptedAdvisor(["<prompt>Поле A {question}</prompt>", "<prompt>Поле A2 {question}</prompt>"], name="A")
    writer_b = ScriptedAdvisor(["<prompt>{question} EXACT</prompt>"], name="B")
    panel = AdvisorPanel({"first": writer_a, "second": writer_b})
    assert panel.name == "A+B"
    critic = CriticOptimizer(rounds=3, patience=5, per_round=1, max_reasks=0, rule_edits=False)
    run = _run(tmp_path, critic, panel)
    trials, session = run.trials, run.advisor
    # round 1 A, round 2 B (perfect on val: no third round is needed)
    assert (len(writer_a.asked), len(writer_b.asked)) == (1, 1)
    row = run.row
    assert row["optimal prompt"] == "{question} EXACT" and row["author"] == "B"
    by_author = row["by_author"]
    assert by_author["B"]["test_cer"] == row["cer"] == 0.0
    assert by_author["A"]["prompt"] == "Поле A {question}" and by_author["A"]["test_cer"] is not None  # scored on test
    assert by_author["dataset"]["test_cer"] is None  # not an advisor: not re-scored
    assert "critic:A/round1" in {t["origin"] for t in trials} and "critic:B/round2" in {t["origin"] for t in trials}
    members = {m.name: m for m in session.members()}
    assert members["A"].usage.calls == members["B"].usage.calls == 1 and session.usage.calls == 2
    assert session.charges().calls == 2 and session.charges().usd == pytest.approx(0.002)
    extra = run.summary.advisor_members
    assert extra["A"]["calls"] == 1 and extra["B"]["calls"] == 1


def test_panel_budget_is_the_runs_and_replies_are_cached_per_member(tmp_path):
    from models.advisor_panel import AdvisorPanel

    store = AnswerStore(tmp_path / "s.sqlite")
    messages = [{"role": "user", "content": "write"}]
    writer_a, writer_b = ScriptedAdvisor(["a"], name="A"), ScriptedAdvisor(["b"], name="B")
    session = AdvisorSession(AdvisorPanel([writer_a, writer_b]), store, max_calls=2)
    a, b = session.members()
    assert a.complete(messages) == "a" and b.complete(messages) == "b"  # same messages, own cache keys
    with pytest.raises(AdvisorBudgetExhausted):
        b.complete(messages, sample=1)  # the panel's 2 calls are spent, whoever asks
    again = AdvisorSession(AdvisorPanel([ScriptedAdvisor(["x"], name="A"), ScriptedAdvisor(["y"], name="B")]), store)
    a2, b2 = again.members()
    assert (a2.complete(messages), b2.complete(messages)) == ("a", "b")  # served from the store
    assert again.usage.cached_calls == 2 and again.usage.calls == 0
    with pytest.raises(ValueError, match="distinct names"):
        AdvisorPanel([ScriptedAdvisor([], name="A"), ScriptedAdvisor([], name="A")])


def test_a_panels_usage_counts_what_its_members_count(tmp_path):
    from models.advisor_panel import AdvisorPanel

    # neither member ever writes a tagged prompt: each reply (and its correction) is unusable
    writer_a, writer_b = ScriptedAdvisor(["no tags"], name="A"), ScriptedAdvisor(["no tags"], name="B")
    panel = AdvisorPanel([writer_a, writer_b])
    pair = dataclasses.replace(one_pair(tmp_path), test=())
    evaluator = Evaluator(ScriptedAnswerModel(), AnswerStore(tmp_path / "s.sqlite"), CerMetric(), pair, Budget(None))
    AdvisorOptimizer(n_candidates=1, max_reasks=0).optimize(pair, evaluator, panel)
    assert writer_a.usage.unusable_replies == writer_b.usage.unusable_replies == 1
    assert panel.usage.unusable_replies == 2  # the panel's total is its members' sum
    panel.count_unusable_reply()  # asked directly, the first member answered
    assert (writer_a.usage.unusable_replies, panel.usage.unusable_replies) == (2, 3)


def test_a_chain_steps_evaluator_view_races_with_the_confidence_asked_for(tmp_path):
    from optimizers.chain import StepEvaluatorView

    asked = {}

    class Recording:
        model_name = "m"

        class budget:  # noqa: N801 - a stand-in for the read-only budget
            limit, used, remaining = None, 0, None

        def race(self, prompts, examples, incumbent=None, minibatch=4, confidence=0.95):
            asked.update(minibatch=minibatch, confidence=confidence)
            return [None] * len(prompts)

    pair = one_pair(tmp_path)
    view = StepEvaluatorView(Recording(), cap=100)
    assert view.race([Prompt("{question}")], pair.val, None, 2, confidence=0.8) == [None]
    assert asked == {"minibatch": 2, "confidence": 0.8}
