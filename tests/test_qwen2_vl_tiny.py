"""model=qwen2_vl_2b's real loading and inference path, on a tiny Qwen2-VL built offline."""

import csv

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from models.qwen2_vl import Qwen2VLAnswerModel
from models.tiny_qwen2_vl import build_tiny_qwen2_vl
from prompt_opt_api import Prompt
from tasks.docqa_csv import load_task
from tests.cli_helpers import REPO, run_cli
from tests.task_factory import draw_image, make_task


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny_qwen2_vl(tmp_path_factory.mktemp("tiny-qwen2-vl"))


@pytest.fixture(scope="module")
def examples(tmp_path_factory):
    root = tmp_path_factory.mktemp("task")
    path = make_task(root, n_images=6, with_second_pair=False)
    # images of different sizes in one batch: different numbers of vision tokens
    for i, size in enumerate([(160, 60), (300, 120), (90, 200), (420, 420), (200, 80), (140, 140)]):
        draw_image(root / f"images/{i}.png", f"doc {i}", size=size)
    return load_task(path).examples


def _model(tiny, **kw):
    cfg = OmegaConf.load(REPO / "conf/model/qwen2_vl_2b.yaml")
    cfg.pretrained = str(tiny)
    cfg.min_pixels, cfg.max_pixels, cfg.max_new_tokens = 56 * 56, 224 * 224, 6
    for k, v in kw.items():
        cfg[k] = v
    return instantiate(cfg)


def test_config_builds_lazily_and_loads_through_from_pretrained(tiny, examples):
    model = _model(tiny)
    assert isinstance(model, Qwen2VLAnswerModel) and model._model is None  # nothing loaded yet
    out = model.answer([(Prompt("{question}"), examples[0])])
    assert model._model is not None and model._model.device.type == "cpu"
    assert str(model._model.dtype) == "torch.float32"
    assert len(out) == 1 and isinstance(out[0], str)
    assert model._processor.tokenizer.padding_side == "left"
    assert model.revision.startswith("sha256:") and model.revision == _model(tiny).revision


def test_batch_equals_one_at_a_time_with_images_of_different_sizes(tiny, examples):
    model = _model(tiny, batch_size=6)
    prompts = [Prompt("{question}"), Prompt("{question} Ответь только значением поля.")]
    batch = [(prompts[i % 2], ex) for i, ex in enumerate(examples)]
    together = model.answer(batch)
    alone = [model.answer([request])[0] for request in batch]
    assert together == alone
    assert len(set(together)) > 1  # the tiny model's output depends on its input


def test_few_shot_demos_with_their_own_images(tiny, examples):
    model = _model(tiny)
    prompt = Prompt("{question}", demos=(examples[1], examples[2]))
    messages = model.messages(prompt, examples[0])
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant", "user"]
    model.load()
    text = model._processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert text.count("<|vision_start|><|image_pad|><|vision_end|>") == 3
    assert examples[1].answer in text and text.endswith("<|im_start|>assistant\n")
    with_demos = model.answer([(prompt, examples[0]), (Prompt("{question}"), examples[3])])
    assert with_demos == [model.answer([(prompt, examples[0])])[0], model.answer([(Prompt("{question}"), examples[3])])[0]]


def test_cli_runs_a_pair_with_the_tiny_model(tmp_path, tiny):
    data = make_task(tmp_path / "data", n_images=5, with_second_pair=False)
    proc = run_cli(tmp_path, data, f"model.pretrained={tiny}", "model.name=tiny-qwen2-vl",
                   "model.max_new_tokens=4", "model.min_pixels=3136", "model.max_pixels=50176", "model.batch_size=4",
                   timeout=300, model="qwen2_vl_2b")
    assert proc.returncode == 0, proc.stderr
    with (tmp_path / "out" / "tiny-qwen2-vl_sep_none.csv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 1 and rows[0]["cer"] and rows[0]["n_test"] == "2"
