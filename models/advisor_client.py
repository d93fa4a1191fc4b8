"""The advisor: one client over litellm for every prompt-writing LLM, cloud or local.

Which model is a YAML in ``conf/advisor/``. Secrets come from the environment only:
the config names the *variable* (``api_key_env``), never the key, so nothing written
to disk (Hydra's saved config, logs, results) can contain it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol

from models.litellm_connection import connection_kwargs, import_litellm, is_connection_error
from prompt_opt_api import Advisor, AdvisorError, EndpointUnreachable, Message

log = logging.getLogger(__name__)


class AdvisorServer(Protocol):
    """A server the advisor starts on first use (e.g. the local llama.cpp server)."""

    def start(self) -> str:
        """Start (if needed) and return the OpenAI-compatible base URL."""

    def stop(self) -> None:
        """Stop the server; idempotent."""


class LiteLLMAdvisor(Advisor):
    """An advisor reached through ``litellm.completion``.

    Args:
        name: Display name (file names, results).
        model: litellm model string, e.g. ``gpt-4o``, ``deepseek/deepseek-chat``,
            ``openai/<served name>`` for any OpenAI-compatible server.
        api_base: Base URL of an OpenAI-compatible server, or None for the provider's.
        api_key_env: Name of the environment variable holding the key (never the key).
        server: Optional server started on first use; its URL becomes ``api_base``
            unless ``api_base`` is set (then the running server at that URL is used).
        temperature: Sampling temperature for proposals.
        max_tokens: Reply length cap.
        timeout_s: Per-request timeout.
        num_retries: Retries on transient errors and empty replies.
    """

    def __init__(
        self,
        name: str,
        model: str,
        api_base: str | None = None,
        api_key_env: str | None = None,
        server: AdvisorServer | None = None,
        temperature: float = 0.7,
        max_tokens: int = 400,
        timeout_s: float = 120.0,
        num_retries: int = 2,
    ) -> None:
        super().__init__()
        self.name = name
        self.model = model
        self.api_base = api_base
        self.api_key_env = api_key_env
        self.server = server
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.timeout_s = timeout_s
        self.num_retries = num_retries
        self._started_base: str | None = None

    def _base_url(self) -> str | None:
        if self.api_base:
            return self.api_base
        if self.server is not None:
            if self._started_base is None:
                try:
                    self._started_base = self.server.start()
                except Exception as err:  # noqa: BLE001 - no server: every pair would fail the same way
                    raise EndpointUnreachable(f"advisor {self.name!r}: its server did not start: {err}") from err
            return self._started_base
        return None

    def complete(self, messages: Sequence[Message]) -> str:
        litellm = import_litellm()
        kwargs: dict[str, Any] = {
            "model": self.model,
            "messages": list(messages),
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "timeout": self.timeout_s,
            **connection_kwargs(self._base_url(), self.api_key_env, f"advisor {self.name!r}", AdvisorError),
        }
        last_error: Exception | None = None
        for attempt in range(self.num_retries + 1):
            try:
                response = litellm.completion(**kwargs)
            except Exception as err:  # noqa: BLE001 - litellm maps provider errors to many types
                if is_connection_error(err):
                    where = kwargs.get("api_base") or f"the {self.model} provider"
                    raise EndpointUnreachable(
                        f"advisor {self.name!r} cannot reach {where} ({type(err).__name__}): start that server, "
                        "set advisor.api_base to a running one, or choose another advisor (advisor=local|none)"
                    ) from None
                last_error = err
                log.warning("advisor %r attempt %d failed: %s", self.name, attempt + 1, type(err).__name__)
                continue
            self._count(litellm, response)
            text = (response.choices[0].message.content or "").strip() if response.choices else ""
            if text:
                return text
            last_error = AdvisorError("empty reply")
        raise AdvisorError(f"advisor {self.name!r} ({self.model}) gave no usable reply: {last_error}")

    def _count(self, litellm: Any, response: Any) -> None:
        self.usage.calls += 1
        usage = getattr(response, "usage", None)
        if usage is not None:
            self.usage.prompt_tokens += int(getattr(usage, "prompt_tokens", 0) or 0)
            self.usage.completion_tokens += int(getattr(usage, "completion_tokens", 0) or 0)
        try:
            self.usage.cost_usd += float(litellm.completion_cost(completion_response=response) or 0.0)
        except Exception:  # noqa: BLE001 - unknown (local) models have no price: cost stays 0
            pass

    def close(self) -> None:
        if self.server is not None:
            self.server.stop()
            self._started_base = None
