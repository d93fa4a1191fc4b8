import pytest

from optimize.answer_store import AnswerStore
from optimize.evaluator import Budget, Evaluator
from prompt_opt_api import MANUAL, BudgetExhausted, HeldOutAccessError, Prompt, baseline_prompt, cache_key
from tasks.cer_metric import CerMetric
from tasks.docqa_csv import load_task
from tasks.pair_splits import SplitConfig, split_pairs
from tests.scripted_answer_model import ScriptedAnswerModel
from tests.task_factory import make_task

GOOD = Prompt("{question} Ответь только значением.", provenance=MANUAL)
BASELINE = baseline_prompt()


@pytest.fixture
def pair(tmp_path):
    task = load_task(make_task(tmp_path / "data", n_images=10, with_second_pair=False))
    (pair,), _ = split_pairs(task.examples, SplitConfig())
    return pair


def test_cache_key_is_sha256_of_sorted_json():
    assert cache_key({"b": 1, "a": [1, "ж"]}) == cache_key({"a": [1, "ж"], "b": 1})
    assert len(cache_key({"a": 1})) == 64 and cache_key({"a": 1}) != cache_key({"a": 2})


def test_scores_batches_and_caches(tmp_path, pair):
    model = ScriptedAnswerModel(batch_size=2)
    store = AnswerStore(tmp_path / "s.sqlite")
    ev = Evaluator(model, store, CerMetric(), pair)
    examples = pair.train + pair.val  # 7 examples
    good = ev.score(GOOD, examples)
    assert good.cer == 0.0 and good.exact_match == 1.0 and good.n == 7
    assert model.batches == [2, 2, 2, 1]
    base = ev.score(BASELINE, examples)
    assert 0.0 < base.cer < 1.0 and base.exact_match == 0.0
    assert model.calls == 14
    again = ev.score(GOOD, examples)
    assert model.calls == 14 and ev.cache_hits == 7 and again == good
    # a new process (new evaluator, same file) is served from the cache too
    ev2 = Evaluator(ScriptedAnswerModel(), AnswerStore(tmp_path / "s.sqlite"), CerMetric(), pair)
    assert ev2.score(GOOD, examples) == good and ev2.model_calls == 0


def test_cache_key_changes_with_model_revision_and_generation(tmp_path, pair):
    store = AnswerStore(tmp_path / "s.sqlite")
    Evaluator(ScriptedAnswerModel(), store, CerMetric(), pair).score(GOOD, pair.val)
    same = Evaluator(ScriptedAnswerModel(), store, CerMetric(), pair)
    same.score(GOOD, pair.val)
    assert same.model_calls == 0  # control: an identical model is served from the cache

    other_generation = Evaluator(ScriptedAnswerModel(exact_marker="XYZ"), store, CerMetric(), pair)
    other_generation.score(GOOD, pair.val)
    assert other_generation.model_calls == len(pair.val)

    new_weights = ScriptedAnswerModel()
    new_weights.revision = "rules-v2"
    other_revision = Evaluator(new_weights, store, CerMetric(), pair)
    other_revision.score(GOOD, pair.val)
    assert other_revision.model_calls == len(pair.val)


def test_budget_counts_evaluations_and_stops_cleanly(tmp_path, pair):
    model = ScriptedAnswerModel()
    ev = Evaluator(model, AnswerStore(tmp_path / "s.sqlite"), CerMetric(), pair, Budget(5))
    ev.score(GOOD, pair.val)  # 3
    with pytest.raises(BudgetExhausted):
        ev.score(BASELINE, pair.val)  # 3 more > 5: refused whole, nothing computed
    assert model.calls == 3 and ev.budget.used == 3 and ev.budget.remaining == 2


def test_listener_gets_split_labels_and_test_is_refused(tmp_path, pair):
    seen = []
    ev = Evaluator(ScriptedAnswerModel(), AnswerStore(tmp_path / "s.sqlite"), CerMetric(), pair,
                   listener=lambda p, split, s: seen.append((split, s.n)))
    ev.score(GOOD, pair.train)
    ev.score(GOOD, pair.val)
    ev.score(GOOD, pair.train + pair.val)
    assert seen == [("train", 4), ("val", 3), ("mixed", 7)]
    with pytest.raises(HeldOutAccessError):
        ev.score(GOOD, pair.test)
    with pytest.raises(ValueError):
        ev.score(GOOD, ())


def test_wrong_answer_count_from_model_is_an_error(tmp_path, pair):
    class Broken(ScriptedAnswerModel):
        def answer(self, batch):
            return super().answer(batch)[:-1]

    ev = Evaluator(Broken(), AnswerStore(tmp_path / "s.sqlite"), CerMetric(), pair)
    with pytest.raises(RuntimeError, match="returned"):
        ev.score(GOOD, pair.val)


def test_prompt_template_only_replaces_question():
    ex_prompt = Prompt('Верни JSON {"value": ...}. {question}')
    from prompt_opt_api import Example  # noqa: PLC0415

    ex = Example(image=None, question="Фамилия?", answer="a", doc_class="p", question_type="q", bbox=None,
                 image_sha256="0")
    assert ex_prompt.render(ex) == 'Верни JSON {"value": ...}. Фамилия?'
