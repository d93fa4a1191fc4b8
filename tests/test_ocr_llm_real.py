"""The embedded CPU answer model with its real weights: prompt-sensitive, deterministic, cached."""

import pytest
from hydra.utils import instantiate

from optimize.answer_store import AnswerStore
from optimize.evaluator import Evaluator
from prompt_opt_api import Prompt
from tasks.cer_metric import CerMetric
from tasks.docqa_csv import load_task
from tasks.pair_splits import SplitConfig, split_pairs
from scripts.default_models import REPO, model_config

pytestmark = pytest.mark.real  # real weights, Tesseract or a real server: the real lane

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
    model.use_cache(store)
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
    model.use_cache(store)
    clean = next(e for e in pair.train + pair.val if "_clean" in e.image.name)
    text = model.ocr_text(clean)
    assert clean.answer in text.upper()  # a clean page's surname is read verbatim
    fresh = instantiate(model_config())
    fresh.use_cache(store)
    fresh.ocr.read = lambda image: (_ for _ in ()).throw(AssertionError("OCR must come from the store"))
    assert fresh.ocr_text(clean) == text
    messages = model.build_messages(Prompt("{question}", demos=(examples[1],)), examples[0])
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[2]["content"] == examples[1].answer and examples[0].question in messages[3]["content"]


def _long_page(example, filler_chars=6000):
    """A synthetic OCR page of ``filler_chars`` with the example's answer in the middle."""
    half = "строка текста документа 123\n" * (filler_chars // 56)
    return (half + f"ЗНАЧЕНИЕ: {example.answer}\n" + half)[:filler_chars]


def test_requests_with_demos_are_fitted_to_the_context(monkeypatch):
    """Unit check of the fitting rule with a stand-in token count (no weights needed)."""
    pair, examples = _three_passports()
    model = instantiate(model_config())
    monkeypatch.setattr(model, "ocr_text", lambda ex: _long_page(ex))
    count = lambda text: len(text) // 2  # noqa: E731 - about 2 characters a token
    budget = model.n_ctx - model.max_tokens - 16
    demos = tuple(pair.train + pair.val)
    target = examples[0]

    few = model.build_messages(Prompt("{question}", demos=demos[:3]), target, count)
    assert sum(count(m["content"]) + 6 for m in few) <= budget
    assert len(few) == 1 + 2 * 3 + 1  # every demo kept, their pages shortened
    for demo, turn in zip(demos[:3], few[1::2]):
        assert demo.answer in turn["content"] and len(turn["content"]) < 6000  # window around the answer
    assert _long_page(target) in few[-1]["content"]  # the page asked about is whole
    assert model.diagnostics() == {"demo_pages_shortened": 1, "demos_dropped": 0, "pages_shortened": 0}

    many = model.build_messages(Prompt("{question}", demos=demos * 4), target, count)
    assert sum(count(m["content"]) + 6 for m in many) <= budget
    kept = (len(many) - 2) // 2
    assert 0 < kept < len(demos) * 4 and model.diagnostics()["demos_dropped"] == len(demos) * 4 - kept
    assert [m["content"] for m in many[2:-1:2]] == [d.answer for d in (demos * 4)[:kept]]  # the first ones stay

    # without a token count (or when it fits) nothing changes
    assert model.build_messages(Prompt("{question}", demos=demos[:1]), target)[1]["content"].count("строка") > 100


def test_real_model_answers_with_demos_whose_pages_overflow_the_context(tmp_path):
    task = load_task(REPO / "tasks/demo/task.csv")
    pairs, _ = split_pairs(task.examples, SplitConfig(), only=["Счёт Номер счёта"])
    pair = pairs[0]
    model = instantiate(model_config(n_ctx=768))  # invoice pages are ~300 tokens: 4 demos + the page overflow
    model.use_cache(AnswerStore(tmp_path / "s.sqlite"))
    prompt, target = Prompt("{question} Только значение.", demos=pair.train[:4]), pair.val[0]
    try:
        llm = model._load()
        with pytest.raises(ValueError, match="exceed context window"):  # what an unfitted request does
            llm.create_chat_completion(messages=model.build_messages(prompt, target), max_tokens=model.max_tokens)
        (answer,) = model.answer([(prompt, target)])
    finally:
        model.close()
    assert isinstance(answer, str) and answer
    diagnostics = model.diagnostics()
    assert diagnostics["demo_pages_shortened"] + diagnostics["demos_dropped"] >= 1, diagnostics


def test_answers_do_not_depend_on_prefix_reuse_or_order(tmp_path):
    """30 queries: page-prefix reuse on, off, and on in reversed order give the same answers."""
    task = load_task(REPO / "tasks/demo/task.csv")
    pairs, _ = split_pairs(task.examples, SplitConfig(), only=["Паспорт Фамилия", "СНИЛС Номер СНИЛС"])
    examples = [ex for p in pairs for ex in (p.train + p.val)][:10]
    prompts = [Prompt("{question}"), STRICT, Prompt("Document field. {question} Reply with the value only.")]
    requests = [(p, ex) for ex in examples for p in prompts]  # each page asked three ways in a row
    assert len(requests) >= 30
    store = AnswerStore(tmp_path / "s.sqlite")

    def answers(kv_cache_mb, order):
        model = instantiate(model_config(kv_cache_mb=kv_cache_mb))
        model.use_cache(store)  # OCR is read once and shared
        try:
            out = dict(zip(order, model.answer([requests[i] for i in order])))
        finally:
            model.close()
        return [out[i] for i in range(len(requests))]

    forward = list(range(len(requests)))
    with_reuse = answers(1024, forward)
    without_reuse = answers(0, forward)
    reversed_reuse = answers(1024, forward[::-1])
    differ = [(requests[i][0].text, requests[i][1].source_row, with_reuse[i], without_reuse[i], reversed_reuse[i])
              for i in forward if not with_reuse[i] == without_reuse[i] == reversed_reuse[i]]
    assert differ == []
