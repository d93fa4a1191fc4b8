"""The embedded CPU answer model with its real weights: prompt-sensitive, deterministic, cached."""

from hydra.utils import instantiate

from optimize.answer_store import AnswerStore
from optimize.contracts import Prompt
from optimize.evaluator import Evaluator
from tasks.cer_metric import CerMetric
from tasks.docqa_csv import load_task
from tasks.pair_splits import SplitConfig, split_pairs
from tests.real_models import REPO, model_config

STRICT = Prompt("{question} Ответь только значением поля, точно как в документе, без пояснений.")
BAD = Prompt("Опиши этот документ.")


def _three_passports():
    task = load_task(REPO / "tasks/demo/task.csv")
    pairs, _ = split_pairs(task.examples, SplitConfig(), only=["Паспорт Фамилия"])
    pair = pairs[0]
    return pair, (pair.train + pair.val)[:3]


def _score(store_path, pair, examples):
    model = instantiate(model_config())
    store = AnswerStore(store_path)
    model.use_store(store)
    evaluator = Evaluator(model, store, CerMetric(), pair)
    try:
        strict, bad = evaluator.score(STRICT, examples), evaluator.score(BAD, examples)
    finally:
        model.close()
        store.close()
    return strict, bad, model.llm_calls


def test_strict_prompt_beats_bad_prompt_deterministically_and_cache_serves_rerun(tmp_path):
    pair, examples = _three_passports()
    strict, bad, calls = _score(tmp_path / "a.sqlite", pair, examples)
    assert calls == 6
    assert strict.cer < bad.cer, (strict, bad)
    assert bad.cer >= 0.8  # a description is nowhere near a surname
    # a fresh store recomputes everything: the same answers (greedy decoding, fixed seed)
    strict2, bad2, calls2 = _score(tmp_path / "b.sqlite", pair, examples)
    assert calls2 == 6 and (strict2, bad2) == (strict, bad)
    # the first store again: every answer is served from the cache, zero llama calls
    strict3, bad3, calls3 = _score(tmp_path / "a.sqlite", pair, examples)
    assert calls3 == 0 and (strict3, bad3) == (strict, bad)


def test_ocr_text_is_read_and_cached_per_image(tmp_path):
    pair, examples = _three_passports()
    model = instantiate(model_config())
    store = AnswerStore(tmp_path / "s.sqlite")
    model.use_store(store)
    clean = next(e for e in pair.train + pair.val if "_clean" in e.image.name)
    text = model.ocr_text(clean)
    assert clean.answer in text.upper()  # a clean page's surname is read verbatim
    fresh = instantiate(model_config())
    fresh.use_store(store)
    fresh.ocr.read = lambda image: (_ for _ in ()).throw(AssertionError("OCR must come from the store"))
    assert fresh.ocr_text(clean) == text
    messages = model.messages(Prompt("{question}", demos=(examples[1],)), examples[0])
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[2]["content"] == examples[1].answer and examples[0].question in messages[3]["content"]
