"""Throughput of the Qwen2-VL answer model and of the OpenAI-compatible client.

    .venv/bin/python scripts/bench_qwen2_vl.py cpu-tiny      # tiny random Qwen2-VL on CPU
    .venv/bin/python scripts/bench_qwen2_vl.py gpu-2b        # random weights, full 2B shape, bf16, CUDA
    .venv/bin/python scripts/bench_qwen2_vl.py openai-stub   # openai_vlm vs a local stub (fixed latency)
    .venv/bin/python scripts/bench_qwen2_vl.py gpu-2b --device cpu --batches 1 --images 1   # dry run of the 2B path

cpu-tiny / gpu-2b print images/s at batch 1, 8, 32 (gpu-2b also 16) and peak memory, on
document-sized 1000x700 images, forcing exactly 16 new tokens per answer. The gpu-2b
target: batch 16 gives at least 5x the images/s of batch 1.
"""

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

# The 2B shape from ARCHITECTURE.md (Qwen2-VL-2B-Instruct's config).
FULL_2B_TEXT = {"vocab_size": 151936, "hidden_size": 1536, "intermediate_size": 8960, "num_hidden_layers": 28,
                "num_attention_heads": 12, "num_key_value_heads": 2, "max_position_embeddings": 32768,
                "rope_parameters": {"rope_type": "default", "rope_theta": 1e6, "mrope_section": [16, 24, 24]}}
FULL_2B_VISION = {"depth": 32, "embed_dim": 1280, "hidden_size": 1536, "num_heads": 16, "mlp_ratio": 4,
                  "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2, "in_channels": 3}


def document_images(n: int, tmp: Path):
    from PIL import Image, ImageDraw

    images = []
    for i in range(n):
        img = Image.new("RGB", (1000, 700), (240, 236, 228))
        d = ImageDraw.Draw(img)
        for row in range(12):
            d.text((40, 40 + row * 50), f"Поле {row}: значение {i * 31 + row}", fill=(20, 20, 20))
        path = tmp / f"doc{i}.png"
        img.save(path)
        images.append(path)
    return images


def build_model(mode: str, tmp: Path, device: str = "cuda"):
    import torch
    from transformers import AutoProcessor, Qwen2VLConfig, Qwen2VLForConditionalGeneration

    from models.tiny_qwen2_vl import build_tiny_qwen2_vl

    tiny = build_tiny_qwen2_vl(tmp / "tiny")
    processor = AutoProcessor.from_pretrained(tiny, size={"shortest_edge": 256 * 28 * 28, "longest_edge": 1280 * 28 * 28})
    processor.tokenizer.padding_side = "left"
    if mode == "cpu-tiny":
        return Qwen2VLForConditionalGeneration.from_pretrained(tiny).eval(), processor, "cpu"
    tok = processor.tokenizer
    ids = {t: tok.convert_tokens_to_ids(t) for t in ("<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>")}
    config = Qwen2VLConfig(text_config=dict(FULL_2B_TEXT, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id),
                           vision_config=FULL_2B_VISION, image_token_id=ids["<|image_pad|>"],
                           video_token_id=ids["<|video_pad|>"], vision_start_token_id=ids["<|vision_start|>"],
                           vision_end_token_id=ids["<|vision_end|>"],
                           tie_word_embeddings=True)  # as in Qwen2-VL-2B-Instruct
    torch.manual_seed(0)
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    with torch.device(device):
        model = Qwen2VLForConditionalGeneration(config).to(dtype).eval()
    print(f"parameters: {sum(p.numel() for p in model.parameters()) / 1e9:.2f} B on {device} as {dtype}")
    return model, processor, device


def bench_model(mode: str, batches: list[int], images_per_batch_size: int, device: str = "cuda") -> None:
    import torch
    from PIL import Image

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        model, processor, device = build_model(mode, tmp, device)
        paths = document_images(max(batches), tmp)
        message = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Какая фамилия? Только значение."}]}]
        text = processor.apply_chat_template(message, tokenize=False, add_generation_prompt=True)
        for bs in batches:
            done, elapsed = 0, 0.0
            runs = max(1, images_per_batch_size // bs)
            for r in range(runs + 1):  # the first run warms up and is not timed
                imgs = [Image.open(paths[(r * bs + i) % len(paths)]).convert("RGB") for i in range(bs)]
                inputs = processor(text=[text] * bs, images=imgs, padding=True, return_tensors="pt").to(device)
                if device == "cuda":
                    torch.cuda.synchronize()
                t = time.perf_counter()
                with torch.inference_mode():
                    model.generate(**inputs, max_new_tokens=16, min_new_tokens=16, do_sample=False)
                if device == "cuda":
                    torch.cuda.synchronize()
                if r:
                    elapsed += time.perf_counter() - t
                    done += bs
            print(f"batch {bs:3d}: {done / elapsed:8.2f} images/s  ({done} images, {elapsed:.2f} s)")
        if device == "cuda":
            print(f"peak GPU memory: {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB")
        print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")


def bench_openai_stub(latency_s: float = 0.1, n: int = 64) -> None:
    from models.openai_vlm import OpenAIVLMAnswerModel
    from prompt_opt_api import Example, Prompt
    from scripts.fake_openai_server import FakeOpenAIServer

    with tempfile.TemporaryDirectory() as tmp_name:
        paths = document_images(4, Path(tmp_name))
        examples = [Example(image=p, question="Фамилия?", answer="x", doc_class="d", question_type="q", bbox=None,
                            image_sha256=str(i)) for i, p in enumerate(paths)]
        batch = [(Prompt("{question}"), examples[i % 4]) for i in range(n)]
        with FakeOpenAIServer(latency_s=latency_s, require_images=True) as server:
            for concurrency in (1, 16):
                model = OpenAIVLMAnswerModel(model="openai/stub", api_base=server.url, concurrency=concurrency)
                model.answer(batch[:2])  # warm-up: litellm import and connection
                t = time.perf_counter()
                model.answer(batch)
                elapsed = time.perf_counter() - t
                print(f"openai_vlm, stub latency {latency_s * 1000:.0f} ms, concurrency {concurrency:2d}: "
                      f"{n / elapsed:6.1f} requests/s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["cpu-tiny", "gpu-2b", "openai-stub"])
    parser.add_argument("--device", default="cuda", help="gpu-2b only: cpu for a slow dry run of the code path")
    parser.add_argument("--batches", default=None, help="comma-separated batch sizes")
    parser.add_argument("--images", type=int, default=None, help="timed images per batch size")
    args = parser.parse_args()
    batches = [int(b) for b in args.batches.split(",")] if args.batches else None
    if args.mode == "openai-stub":
        bench_openai_stub()
    elif args.mode == "cpu-tiny":
        bench_model("cpu-tiny", batches or [1, 8, 32], args.images or 32, "cpu")
    else:
        bench_model("gpu-2b", batches or [1, 8, 16, 32], args.images or 64, args.device)
