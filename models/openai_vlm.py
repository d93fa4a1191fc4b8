"""``model=openai_vlm``: any OpenAI-compatible vision endpoint as the answer model.

In production a vLLM server (``vllm serve Qwen/Qwen2-VL-2B-Instruct``) is the fast path on
a GPU box; a cloud VLM works the same way through litellm. Images travel as base64 data
URLs; requests run concurrently with retries.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from models.litellm_connection import call_with_retries, classify_error, connection_kwargs, import_litellm
from models.vlm_messages import framing_identity, openai_turns
from prompt_opt_api import AnswerModel, EndpointUnreachable, EndpointUnusable, Example, Prompt

log = logging.getLogger(__name__)


class OpenAIVLMAnswerModel(AnswerModel):
    """An OpenAI-compatible chat endpoint that accepts images.

    Args:
        name: Display name for output files (e.g. ``Qwen2-VL-2B``).
        model: litellm model string; ``openai/<served name>`` for vLLM and other
            OpenAI-compatible servers.
        api_base: Server URL (``http://host:8000/v1``), or None for the provider's.
        api_key_env: Environment variable holding the key (never the key itself).
        revision: Identity of the served weights (cache-key part; set it when the
            server's model changes under the same name).
        concurrency: Requests in flight at once.
        max_tokens: Answer length cap.
        timeout_s: Per-request timeout.
        num_retries: Retries per request on errors that can heal (timeouts, 429, 5xx).
        retry_initial_wait_s: First backoff (doubles each retry, with jitter).
        batch_size: Requests per evaluator call.
    """

    def __init__(
        self,
        name: str = "Qwen2-VL-2B",
        model: str = "openai/Qwen/Qwen2-VL-2B-Instruct",
        api_base: str | None = "http://127.0.0.1:8000/v1",
        api_key_env: str | None = None,
        revision: str = "",
        concurrency: int = 16,
        max_tokens: int = 32,
        timeout_s: float = 120.0,
        num_retries: int = 2,
        batch_size: int = 32,
        retry_initial_wait_s: float = 1.0,
    ) -> None:
        self.name = name
        self.model = model
        self.api_base = api_base
        self.api_key_env = api_key_env
        self.revision = revision or model
        self.concurrency = max(1, concurrency)
        self.max_tokens = max_tokens
        self.timeout_s = timeout_s
        self.num_retries = num_retries
        self.retry_initial_wait_s = retry_initial_wait_s
        self._batch_size = batch_size
        self.requests_sent = 0

    @property
    def preferred_batch_size(self) -> int:
        return self._batch_size

    def generation_params(self) -> dict[str, Any]:
        return {"max_tokens": self.max_tokens, "temperature": 0.0, "endpoint_model": self.model}

    def cache_identity(self) -> dict[str, Any]:
        return {**super().cache_identity(), **framing_identity()}

    def messages(self, prompt: Prompt, example: Example) -> list[dict[str, Any]]:
        return openai_turns(prompt, example)

    def openai_request(self, prompt: Prompt, example: Example) -> dict[str, Any]:
        """The body this model sends (litellm takes ``openai/<served name>`` and sends the served name)."""
        served = self.model.split("/", 1)[1] if self.model.startswith("openai/") else self.model
        return {"model": served, "messages": self.messages(prompt, example), "temperature": 0.0,
                "max_tokens": self.max_tokens}

    def _one(self, request: tuple[Prompt, Example]) -> str:
        litellm = import_litellm()
        body = self.openai_request(*request)  # one builder: the prompt runtime sends the same body
        kwargs: dict[str, Any] = {
            **body, "model": self.model, "timeout": self.timeout_s, "max_retries": 0,
            **connection_kwargs(self.api_base, self.api_key_env, f"answer model {self.name!r}", EndpointUnusable),
        }
        who = f"answer model {self.name!r}"
        try:
            response = call_with_retries(lambda: litellm.completion(**kwargs), who=who, retries=self.num_retries,
                                         initial_wait_s=self.retry_initial_wait_s)
        except Exception as err:  # noqa: BLE001 - provider errors come in many types
            kind = classify_error(err)
            where = self.api_base or self.model
            if kind == "unreachable":
                raise EndpointUnreachable(
                    f"{who} cannot reach {where} ({type(err).__name__}): start the server first (e.g. `vllm serve "
                    "Qwen/Qwen2-VL-2B-Instruct --port 8000`) or point model.api_base at a running one"
                ) from None
            if kind == "fatal":
                raise EndpointUnusable(f"{who} at {where} refused the request ({type(err).__name__}): check "
                                       f"{self.api_key_env or 'the key'} and model.model") from None
            raise RuntimeError(f"{who} at {where}: {type(err).__name__}: {err}") from None
        self.requests_sent += 1
        return (response.choices[0].message.content or "").strip()

    def answer(self, batch: Sequence[tuple[Prompt, Example]]) -> list[str]:
        if self.concurrency == 1 or len(batch) == 1:
            return [self._one(r) for r in batch]
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(batch))) as pool:
            return list(pool.map(self._one, batch))
