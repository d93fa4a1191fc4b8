"""Chat messages for vision-language answer models: demos as earlier turns with their images."""

from __future__ import annotations

import base64
import mimetypes
from pathlib import Path
from typing import Any

from prompt_opt_api import Example, Prompt


# Bump when the turn layout below changes: it is part of every VLM answer's cache key.
FRAMING_VERSION = "vlm-turns/v1: demos as earlier user(image,text)/assistant(text) turns"


def framing_identity() -> dict[str, str]:
    """Cache-key part for models that take these messages: layout version and Pillow (it decodes the images)."""
    from importlib.metadata import version

    return {"framing": FRAMING_VERSION, "pillow": version("pillow")}


def data_url(image: Path) -> str:
    """The image file as a ``data:`` URL (base64), as OpenAI-compatible vision APIs take it."""
    mime = mimetypes.guess_type(image.name)[0] or "image/png"
    return f"data:{mime};base64,{base64.b64encode(Path(image).read_bytes()).decode('ascii')}"


def openai_image_part(example: Example) -> dict[str, Any]:
    """An image content item as OpenAI-compatible vision APIs (vLLM, cloud VLMs) take it."""
    return {"type": "image_url", "image_url": {"url": data_url(example.image)}}


def openai_turns(prompt: Prompt, example: Example) -> list[dict[str, Any]]:
    """The OpenAI-style ``messages`` of one request, images inline: what ``model=openai_vlm``
    sends and what a vLLM server serving Qwen2-VL takes."""
    return vlm_turns(prompt, example, openai_image_part)


def vlm_turns(prompt: Prompt, example: Example, image_part: Any) -> list[dict[str, Any]]:
    """User/assistant turns for one request: each demo (its image + instruction, then its
    answer), then the example's image and instruction.

    Args:
        prompt: Candidate prompt (template and demos).
        example: The example to answer.
        image_part: ``image_part(example) -> dict`` building the image content item.
    """
    turns: list[dict[str, Any]] = []
    for demo in prompt.demos:
        turns.append({"role": "user", "content": [image_part(demo), {"type": "text", "text": prompt.render(demo)}]})
        turns.append({"role": "assistant", "content": [{"type": "text", "text": demo.answer}]})
    turns.append({"role": "user", "content": [image_part(example), {"type": "text", "text": prompt.render(example)}]})
    return turns
