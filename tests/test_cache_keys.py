"""Cache keys name everything that changes an answer, and nothing that does not."""

import json

import pytest
from omegaconf import OmegaConf

from models.qwen2_vl import Qwen2VLAnswerModel, folder_digest
from optimize.evaluator import answer_cache_key
from prompt_opt_api import MANUAL, Example, Prompt, Provenance
from scripts.default_models import model_config

EXAMPLE = Example(image=None, question="Фамилия?", answer="ИВАНОВ", doc_class="p", question_type="q", bbox=None,
                  image_sha256="ab" * 32, source_row="t.csv, row 1 (line 2)")
PROMPT = Prompt("{question} Только значение.", provenance=MANUAL)


def _key(model, prompt=PROMPT, example=EXAMPLE):
    return answer_cache_key(model.cache_identity(), prompt, example)


def _ocr_llm(**overrides):
    from hydra.utils import instantiate

    model = instantiate(model_config(**overrides))
    model.ocr._version = "tesseract 5.3.0"
    model.ocr._report = "tesseract 5.3.0 | leptonica-1.82.0"  # what `tesseract --version` would say
    model.ocr._tessdata = None
    model.ocr._traineddata = {"rus": "a" * 64, "eng": "b" * 64}
    return model


def test_request_parts_change_the_key_and_provenance_does_not():
    model = _ocr_llm()
    base = _key(model)
    assert _key(model, Prompt(PROMPT.text, provenance=Provenance("textgrad", "gpt4o", "step3"))) == base
    assert _key(model, Prompt(PROMPT.text + " ")) != base
    assert _key(model, Prompt(PROMPT.text, demos=(EXAMPLE,))) != base
    assert _key(model, example=Example(**{**EXAMPLE.__dict__, "image_sha256": "cd" * 32})) != base
    assert _key(model, example=Example(**{**EXAMPLE.__dict__, "question": "Имя?"})) != base
    # where an example came from is bookkeeping, not model input
    assert _key(model, example=Example(**{**EXAMPLE.__dict__, "source_row": "other.csv, row 9"})) == base


@pytest.mark.parametrize("change", [
    lambda m: setattr(m.ocr, "_report", "tesseract 5.4.1 | leptonica-1.82.0"),
    lambda m: setattr(m.ocr, "_report", "tesseract 5.3.0 | leptonica-1.84.1"),
    lambda m: m.ocr._traineddata.update(rus="c" * 64),  # tessdata_best instead of tessdata_fast
    lambda m: setattr(m.ocr, "lang", "rus"),
    lambda m: setattr(m.ocr, "psm", 6),
    lambda m: setattr(m, "max_tokens", 64),
    lambda m: setattr(m, "n_ctx", 8192),
    lambda m: setattr(m, "ocr_max_chars", 3000),
    lambda m: setattr(m, "revision", "f" * 64),
    lambda m: setattr(m, "name", "other-name"),
])
def test_ocr_llm_answer_key_names_each_component(change):
    model = _ocr_llm()
    before = _key(model)
    change(model)
    assert _key(model) != before


def test_ocr_llm_key_names_the_llama_cpp_version(monkeypatch):
    import importlib.metadata

    model = _ocr_llm()
    before = _key(model)
    real = importlib.metadata.version
    monkeypatch.setattr(importlib.metadata, "version",
                        lambda dist: "0.0.0-other" if dist == "llama-cpp-python" else real(dist))
    assert model.cache_identity()["llama_cpp_python"] == "0.0.0-other" and _key(model) != before


def test_ocr_llm_key_ignores_what_does_not_change_answers():
    model = _ocr_llm()
    before = _key(model)
    model.n_threads, model.kv_cache_bytes, model._batch_size = 1, 0, 1
    assert _key(model) == before


def _qwen(tmp_path, **kw):
    return Qwen2VLAnswerModel(pretrained=str(tmp_path), **{"device": "cpu", **kw})


def _fake_checkpoint(folder):
    (folder / "sub").mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"a": 1}))
    (folder / "merges.txt").write_text("a b\n")
    (folder / "sub" / "extra.json").write_text("{}")
    (folder / ".cache").mkdir()
    (folder / ".cache" / "download-metadata").write_text("x")


def test_local_folder_revision_covers_every_file(tmp_path):
    _fake_checkpoint(tmp_path)
    base = folder_digest(tmp_path)
    for name, text in (("merges.txt", "a c\n"), ("sub/extra.json", '{"b": 2}'), ("new_file.bin", "")):
        path = tmp_path / name
        old = path.read_text() if path.exists() else None
        path.write_text(text)
        assert folder_digest(tmp_path) != base, name
        if old is None:
            path.unlink()
        else:
            path.write_text(old)
        assert folder_digest(tmp_path) == base
    (tmp_path / ".cache" / "download-metadata").write_text("y")  # download bookkeeping is not weights
    assert folder_digest(tmp_path) == base
    (tmp_path / "merges.txt").rename(tmp_path / "merges2.txt")  # a renamed file is a different checkpoint
    assert folder_digest(tmp_path) != base


@pytest.mark.parametrize("field,value", [("dtype", "bfloat16"), ("device", "meta"), ("attn_implementation", "eager"),
                                         ("max_new_tokens", 8), ("max_pixels", 1000), ("system_prompt", "x")])
def test_qwen2_vl_key_names_dtype_device_attention_and_generation(tmp_path, field, value):
    pytest.importorskip("torch")
    _fake_checkpoint(tmp_path)
    base = _key(_qwen(tmp_path))
    assert _key(_qwen(tmp_path, **{field: value})) != base


def test_qwen2_vl_key_names_library_versions(tmp_path):
    pytest.importorskip("torch")
    _fake_checkpoint(tmp_path)
    identity = _qwen(tmp_path).cache_identity()
    import torch
    import transformers

    assert identity["transformers"] == transformers.__version__ and identity["torch"].split("+")[0] == torch.__version__.split("+")[0]
    assert identity["dtype"] == "float32" and identity["device_type"] == "cpu"


def test_hub_id_resolves_to_a_fixed_commit(tmp_path, monkeypatch):
    """``main`` is never keyed: the commit it points to in the hub cache is, and moves with it."""
    hub = tmp_path / "hub"
    repo = hub / "models--org--tiny-vl"
    commits = ["1" * 40, "2" * 40]
    for commit in commits:
        (repo / "snapshots" / commit).mkdir(parents=True)
        (repo / "snapshots" / commit / "config.json").write_text("{}")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commits[0])
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as hub_constants

    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(hub))
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    first = Qwen2VLAnswerModel(pretrained="org/tiny-vl")
    assert first.revision == f"org/tiny-vl@{commits[0]}"
    (repo / "refs" / "main").write_text(commits[1])  # the branch moved
    assert Qwen2VLAnswerModel(pretrained="org/tiny-vl").revision == f"org/tiny-vl@{commits[1]}"
    pinned = Qwen2VLAnswerModel(pretrained="org/tiny-vl", hub_revision=commits[0])
    assert pinned.revision == f"org/tiny-vl@{commits[0]}"


def test_run_id_names_the_code_version(monkeypatch):
    import optimize.run_settings as entry

    cfg = OmegaConf.create({"budget": {"evaluations_per_pair": 5}, "paths": {"store": "a"}})
    base = entry.run_id_of(cfg, "task")
    moved = OmegaConf.create({"budget": {"evaluations_per_pair": 5}, "paths": {"store": "elsewhere"}})
    assert entry.run_id_of(moved, "task") == base  # where files go is not what a run is
    assert entry.code_version().startswith("0.1.0+") or entry.code_version().startswith("unknown+")
    monkeypatch.setattr(entry, "code_version", lambda: "0.1.0+000000000000")
    assert entry.run_id_of(cfg, "task") != base
