"""Build a tiny random-weight Qwen2-VL checkpoint offline, for tests and CPU benchmarks.

The real Qwen2-VL-2B weights cannot be downloaded here, so the loading and inference
code is proven on a model with the same architecture and file layout: a byte-level BPE
tokenizer trained with ``tokenizers`` (with Qwen2-VL's special tokens and chat
template), a ``Qwen2VLConfig`` shrunk to a few hundred thousand parameters, an image
processor, all written with ``save_pretrained`` so that tests load them back through the
same ``from_pretrained`` path as the real model.
"""

from __future__ import annotations

from pathlib import Path

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                  "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>"]

# Qwen2-VL's chat template (images as <|vision_start|><|image_pad|><|vision_end|>), videos left out.
CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}"
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}"
    "{% endfor %}<|im_end|>\n{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

_CORPUS = [
    "Какая фамилия владельца паспорта? Иванов Петрова Сидоров Кузнецова",
    "Номер СНИЛС 112-233-445 95. Дата рождения 01.02.1990. Код подразделения 770-001.",
    "Счёт на оплату № 125 от 12 марта 2024 г. ИНН 7707083893 КПП 770701001 Итого: 12 345,00",
    "Ответь только значением поля, без пояснений. Answer with the field value only.",
    "РОССИЙСКАЯ ФЕДЕРАЦИЯ ПАСПОРТ ВЫДАН ГУ МВД РОССИИ ПО Г. МОСКВЕ 0123456789",
]


def build_tokenizer(vocab_size: int = 400):
    """A byte-level BPE tokenizer with Qwen2-VL's special tokens, as a transformers tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(_CORPUS * 4, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>", unk_token=None,
        additional_special_tokens=SPECIAL_TOKENS[1:], chat_template=CHAT_TEMPLATE,
    )


def build_tiny_qwen2_vl(out_dir: str | Path, seed: int = 0, hidden: int = 64, layers: int = 2) -> Path:
    """Write a tiny Qwen2-VL checkpoint (model, tokenizer, processor) into ``out_dir``.

    Args:
        out_dir: Target folder.
        seed: Weight initialization seed.
        hidden: Text hidden size (vision merger output matches it).
        layers: Text decoder layers.

    Returns:
        ``out_dir`` as a Path.
    """
    import torch
    from transformers import (AutoProcessor, Qwen2VLConfig, Qwen2VLForConditionalGeneration,
                              Qwen2VLImageProcessor, Qwen2VLProcessor, Qwen2VLVideoProcessor)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer()
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    heads = 4
    config = Qwen2VLConfig(
        text_config={
            "vocab_size": len(tokenizer), "hidden_size": hidden, "intermediate_size": hidden * 2,
            "num_hidden_layers": layers, "num_attention_heads": heads, "num_key_value_heads": 2,
            "max_position_embeddings": 4096, "initializer_range": 0.5,
            "rope_parameters": {"rope_type": "default", "rope_theta": 1e6,
                                "mrope_section": _mrope_section(hidden // heads)},
            "bos_token_id": ids["<|endoftext|>"], "eos_token_id": ids["<|im_end|>"], "pad_token_id": ids["<|endoftext|>"],
        },
        vision_config={"depth": 2, "embed_dim": 32, "hidden_size": hidden, "num_heads": 4, "mlp_ratio": 2,
                       "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2, "in_channels": 3},
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = Qwen2VLForConditionalGeneration(config).eval()
    # A large init spread makes greedy choices decisive (no near-ties between random logits),
    # which batch-invariance checks rely on.
    model.generation_config.eos_token_id = ids["<|im_end|>"]
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    model.generation_config.do_sample = False
    model.save_pretrained(out)
    image_processor = Qwen2VLImageProcessor(min_pixels=56 * 56, max_pixels=448 * 448, patch_size=14,
                                            merge_size=2, temporal_patch_size=2)
    processor = Qwen2VLProcessor(image_processor=image_processor, tokenizer=tokenizer,
                                 video_processor=Qwen2VLVideoProcessor(), chat_template=CHAT_TEMPLATE)
    processor.save_pretrained(out)
    AutoProcessor.from_pretrained(out)  # fail here, not in a test, if the files do not load back
    return out


def _mrope_section(head_dim: int) -> list[int]:
    half = head_dim // 2  # temporal, height, width shares of the rotary frequencies
    t = half // 4
    h = (half - t) // 2
    return [t, h, half - t - h]
