"""``model=qwen2_vl_2b``: Qwen2-VL (or Qwen2.5-VL) through transformers, batched.

bf16 on CUDA, float32 on CPU; left padding so a batch of prompts of different lengths
generates together; greedy decoding with a ``max_new_tokens`` cap. Few-shot demos are
earlier chat turns with their own images (multi-image messages).
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from models.vlm_messages import framing_identity, openai_turns, vlm_turns
from prompt_opt_api import AnswerModel, Example, Prompt

log = logging.getLogger(__name__)


def folder_digest(folder: Path) -> str:
    """sha256 over every non-hidden file below ``folder``: relative path, then bytes."""
    digest = hashlib.sha256()
    files = sorted(
        (f for f in folder.rglob("*") if f.is_file() and not any(part.startswith(".") for part in f.relative_to(folder).parts)),
        key=lambda f: f.relative_to(folder).as_posix(),
    )
    for f in files:
        digest.update(f.relative_to(folder).as_posix().encode() + b"\0")
        digest.update(str(f.stat().st_size).encode() + b"\0")
        with f.open("rb") as fh:
            while chunk := fh.read(8 << 20):
                digest.update(chunk)
    return digest.hexdigest()


class Qwen2VLAnswerModel(AnswerModel):
    """A Qwen2-VL-family checkpoint loaded with ``from_pretrained``.

    Args:
        name: Display name for output files.
        pretrained: Hub id (``Qwen/Qwen2-VL-2B-Instruct``) or a local folder.
        model_class: transformers class name (``Qwen2_5_VLForConditionalGeneration`` for 2.5).
        hub_revision: Hub branch/tag/commit to load (part of the cache key).
        device: ``auto`` (CUDA if available), ``cuda``, ``cpu``, ...
        dtype: ``auto`` (bf16 on CUDA, float32 on CPU) or a torch dtype name.
        attn_implementation: ``sdpa`` (default), ``flash_attention_2`` (if installed), ``eager``.
        min_pixels: Lower bound of the resized image area (processor setting).
        max_pixels: Upper bound of the resized image area.
        max_new_tokens: Answer length cap.
        batch_size: Requests per ``generate`` call.
        system_prompt: Optional fixed system message.
    """

    def __init__(
        self,
        name: str = "Qwen2-VL-2B",
        pretrained: str = "Qwen/Qwen2-VL-2B-Instruct",
        model_class: str = "Qwen2VLForConditionalGeneration",
        hub_revision: str | None = None,
        device: str = "auto",
        dtype: str = "auto",
        attn_implementation: str = "sdpa",
        min_pixels: int | None = 256 * 28 * 28,
        max_pixels: int | None = 1280 * 28 * 28,
        max_new_tokens: int = 32,
        batch_size: int = 16,
        system_prompt: str | None = None,
    ) -> None:
        self.name = name
        self.pretrained = pretrained
        self.model_class = model_class
        self.hub_revision = hub_revision
        self.device = device
        self.dtype = dtype
        self.attn_implementation = attn_implementation
        self.min_pixels = min_pixels
        self.max_pixels = max_pixels
        self.max_new_tokens = max_new_tokens
        self._batch_size = batch_size
        self.system_prompt = system_prompt
        self._model: Any = None
        self._processor: Any = None
        self._revision: str | None = None
        self._commit: str | None = None  # hub commit resolved from hub_revision (None: local folder)
        self.generate_calls = 0

    @property
    def preferred_batch_size(self) -> int:
        return self._batch_size

    @property
    def revision(self) -> str:  # type: ignore[override]
        """Weights identity, always a fixed one.

        A local folder: sha256 over every file (relative path and bytes, sub-folders,
        tokenizer files and ``merges.txt`` included; hidden files such as download
        metadata left out). A hub id: ``<id>@<commit>``, the commit that the given
        ``hub_revision`` (or ``main``) resolves to in the local hub cache, downloading it
        if needed, never the moving branch name; the same commit is then loaded.
        """
        if self._revision is None:
            folder = Path(self.pretrained).expanduser()
            if folder.is_dir():
                self._revision = "sha256:" + folder_digest(folder)
            else:
                self._commit = self._hub_commit()
                self._revision = f"{self.pretrained}@{self._commit}"
        return self._revision

    def _hub_commit(self) -> str:
        if self.hub_revision and re.fullmatch(r"[0-9a-f]{40}", self.hub_revision):
            return self.hub_revision
        from huggingface_hub import snapshot_download  # lazy; installed with transformers

        snapshot = Path(snapshot_download(self.pretrained, revision=self.hub_revision))
        return snapshot.name  # hub cache layout: .../snapshots/<commit>

    def generation_params(self) -> dict[str, Any]:
        return {
            "max_new_tokens": self.max_new_tokens, "do_sample": False, "min_pixels": self.min_pixels,
            "max_pixels": self.max_pixels, "model_class": self.model_class, "system_prompt": self.system_prompt,
        }

    def cache_identity(self) -> dict[str, Any]:
        from importlib.metadata import version

        device, dtype = self._resolved_device_dtype()
        return {
            **super().cache_identity(),
            "dtype": str(dtype).removeprefix("torch."),
            "device_type": device.split(":")[0],
            "attn_implementation": self.attn_implementation,
            "transformers": version("transformers"),
            "torch": version("torch"),
            **framing_identity(),
        }

    def _resolved_device_dtype(self):
        import torch

        device = self.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if self.dtype == "auto":
            dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
        else:
            dtype = getattr(torch, self.dtype)
        return device, dtype

    def load(self) -> None:
        """Load processor and weights (the first ``answer`` call does it)."""
        if self._model is not None:
            return
        import torch
        import transformers

        device, dtype = self._resolved_device_dtype()
        self.revision  # noqa: B018 - resolves a hub id to the commit that is keyed and loaded
        kwargs = {"revision": self._commit} if self._commit else {}
        # transformers 5 takes the pixel bounds as the image processor's `size`
        size = {k: v for k, v in (("shortest_edge", self.min_pixels), ("longest_edge", self.max_pixels)) if v}
        pixels = {"size": size} if size else {}
        self._processor = transformers.AutoProcessor.from_pretrained(self.pretrained, **pixels, **kwargs)
        self._processor.tokenizer.padding_side = "left"  # generation continues at the right edge
        cls = getattr(transformers, self.model_class)
        self._model = cls.from_pretrained(self.pretrained, dtype=dtype, attn_implementation=self.attn_implementation,
                                          **kwargs).to(device).eval()
        log.info("loaded %s (%s) on %s as %s", self.pretrained, self.model_class, device, dtype)
        torch.set_grad_enabled(False)

    def messages(self, prompt: Prompt, example: Example) -> list[dict[str, Any]]:
        """The processor's chat messages: image placeholders, pixels passed beside them."""
        return self._with_system(vlm_turns(prompt, example, lambda ex: {"type": "image"}))

    def openai_request(self, prompt: Prompt, example: Example) -> dict[str, Any]:
        """The same request for a vLLM server serving this checkpoint: the turns with images inline,
        greedy, the same answer cap and the processor's pixel bounds (vLLM's defaults differ)."""
        pixels = {k: v for k, v in (("min_pixels", self.min_pixels), ("max_pixels", self.max_pixels)) if v}
        return {"model": self.pretrained, "messages": self._with_system(openai_turns(prompt, example)),
                "temperature": 0.0, "max_tokens": self.max_new_tokens,
                **({"mm_processor_kwargs": pixels} if pixels else {})}

    def _with_system(self, turns: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if self.system_prompt:
            turns.insert(0, {"role": "system", "content": [{"type": "text", "text": self.system_prompt}]})
        return turns

    def answer(self, batch: Sequence[tuple[Prompt, Example]]) -> list[str]:
        if not batch:
            return []
        self.load()
        import torch
        from PIL import Image

        texts, images = [], []
        for prompt, example in batch:
            texts.append(self._processor.apply_chat_template(self.messages(prompt, example), tokenize=False,
                                                             add_generation_prompt=True))
            for ex in (*prompt.demos, example):  # images in the order their placeholders appear
                with Image.open(ex.image) as img:
                    images.append(img.convert("RGB"))
        inputs = self._processor(text=texts, images=images, padding=True, return_tensors="pt").to(self._model.device)
        with torch.inference_mode():
            out = self._model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False,
                                       pad_token_id=self._processor.tokenizer.pad_token_id)
        self.generate_calls += 1
        new_tokens = out[:, inputs["input_ids"].shape[1]:]
        return [t.strip() for t in self._processor.batch_decode(new_tokens, skip_special_tokens=True)]

    def close(self) -> None:
        if self._model is not None:
            self._model = None
            self._processor = None
            try:
                import torch

                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
            except ImportError:
                pass
