"""The advisor: one client over litellm for every prompt-writing LLM, cloud or local.

Which model is a YAML in ``conf/advisor/``. Secrets come from the environment only:
the config names the *variable* (``api_key_env``), never the key, so nothing written
to disk (Hydra's saved config, logs, results) can contain it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from models.litellm_connection import call_with_retries, classify_error, connection_kwargs, import_litellm
from prompt_opt_api import (
    Advisor,
    AdvisorError,
    AdvisorReply,
    EndpointUnreachable,
    EndpointUnusable,
    Message,
)

log = logging.getLogger(__name__)


class AdvisorServer(Protocol):
    """A server the advisor starts on first use (e.g. the local llama.cpp server)."""

    def start(self) -> str:
        """Start (if needed) and return the OpenAI-compatible base URL."""

    def stop(self) -> None:
        """Stop the server; idempotent."""


class LiteLLMAdvisor(Advisor):
    """An advisor reached through ``litellm.completion``.

    Retries what can heal (timeouts, 429 honouring Retry-After, 5xx) with exponential
    backoff and jitter, never what cannot: a rejected key (401/403) or an unknown model
    reported as 404 raises ``EndpointUnusable`` naming the advisor and the key variable (a
    provider that reports an unknown model as 400 gives an ``AdvisorError`` per call: the
    proposals fail, counted, and the run goes on without the advisor's prompts); a refused
    connection raises ``EndpointUnreachable``; a bad request or exhausted retries raise
    ``AdvisorError`` (that proposal fails, the run goes on). An empty reply is returned
    as ``""``: the optimizer's parser decides what to do with it.

    Args:
        name: Display name (file names, results).
        model: litellm model string, e.g. ``gpt-4o``, ``deepseek/deepseek-chat``,
            ``openai/<served name>`` for any OpenAI-compatible server.
        api_base: Base URL of an OpenAI-compatible server, or None for the provider's.
        api_key_env: Name of the environment variable holding the key (never the key).
        server: Optional server started on first use; its URL becomes ``api_base``
            unless ``api_base`` is set (then the running server at that URL is used).
        temperature: Default sampling temperature for proposals.
        max_tokens: Reply length cap.
        timeout_s: Per-request timeout.
        num_retries: Retries of a request that can heal.
        retry_initial_wait_s: First backoff (doubles each retry, with jitter).
        accepts_images: Whether the model reads images (GPT-4o, Claude, Gemini, Qwen2-VL-72B).
        assumed_seconds_per_call: The run plan's guess of a call's duration before any was measured.
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
        num_retries: int = 3,
        retry_initial_wait_s: float = 1.0,
        accepts_images: bool = False,
        assumed_seconds_per_call: float | None = None,
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
        self.retry_initial_wait_s = retry_initial_wait_s
        self.accepts_images = accepts_images
        self.assumed_seconds_per_call = assumed_seconds_per_call
        self._started_base: str | None = None
        self._start_lock = threading.Lock()
        self._usage_lock = threading.Lock()

    def cache_identity(self) -> dict[str, Any]:
        """What makes a reply: the model, its reply cap, and for a local server the weights'
        sha256 (another quantization under the same alias is another advisor); not the URL or key."""
        weights = getattr(getattr(self.server, "weights", None), "sha256", None)
        return {"model": self.model, "max_tokens": self.max_tokens, **({"weights_sha256": weights} if weights else {})}

    def check_ready(self) -> None:
        """Fail before any work when the key variable is missing (no request is sent)."""
        connection_kwargs(None, self.api_key_env, f"advisor {self.name!r}", EndpointUnusable)

    def estimated_cost_usd(self, prompt_tokens: int, completion_tokens: int) -> float | None:
        """Dollars by litellm's price map; 0 for the local server this advisor starts; None
        for a model the map does not price (e.g. a self-hosted one at ``api_base``)."""
        if self.server is not None and not self.api_base:
            return 0.0
        price = litellm_price(self.model)
        if price is None:
            return None
        return prompt_tokens * price[0] + completion_tokens * price[1]

    def _base_url(self) -> str | None:
        if self.api_base:
            return self.api_base
        if self.server is None:
            return None
        with self._start_lock:  # one server, however many threads ask at once
            if self._started_base is None:
                try:
                    self._started_base = self.server.start()
                except Exception as err:  # noqa: BLE001 - no server: every pair would fail the same way
                    raise EndpointUnreachable(f"advisor {self.name!r}: its server did not start: {err}") from err
            return self._started_base

    def reply(self, messages: Sequence[Message], *, temperature: float | None = None, sample: int = 0,
              stop: Sequence[str] | None = None, max_tokens: int | None = None) -> AdvisorReply:
        """One request (with retries); the reply text and what it cost."""
        litellm = import_litellm()
        base = self._base_url()
        kwargs: dict[str, Any] = {
            "model": self.model,
            "messages": list(messages),
            "temperature": self.temperature if temperature is None else temperature,
            "max_tokens": self.max_tokens if max_tokens is None else min(self.max_tokens, max_tokens),
            **({"stop": list(stop)} if stop else {}),
            "timeout": self.timeout_s,
            "seed": sample,  # reproducible samples where the provider supports it
            "drop_params": True,  # providers without `seed` get the request without it
            "max_retries": 0,  # retries are ours (below), not the provider client's as well
            **connection_kwargs(base, self.api_key_env, f"advisor {self.name!r}", EndpointUnusable),
        }
        who = f"advisor {self.name!r}"
        try:
            response = call_with_retries(lambda: litellm.completion(**kwargs), who=who, retries=self.num_retries,
                                         initial_wait_s=self.retry_initial_wait_s)
        except Exception as err:  # noqa: BLE001 - litellm maps provider errors to many types
            kind = classify_error(err)
            where = base or f"the {self.model} provider"
            if kind == "unreachable":
                raise EndpointUnreachable(
                    f"{who} cannot reach {where} ({type(err).__name__}): start that server, set advisor.api_base "
                    "to a running one, or choose another advisor (advisor=local|none)"
                ) from None
            if kind == "fatal":
                key = f"the key in ${self.api_key_env}" if self.api_key_env else "its credentials"
                raise EndpointUnusable(
                    f"{who} ({self.model} at {where}) refused the request: {type(err).__name__} "
                    f"{_status(err)}; check {key} and the model name"
                ) from None
            raise AdvisorError(f"{who} ({self.model}) gave no usable reply: {type(err).__name__} {_status(err)}"
                               ) from None
        text = (response.choices[0].message.content or "").strip() if response.choices else ""
        usage = getattr(response, "usage", None)
        result = AdvisorReply(
            text=text,
            prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
            completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
            cost_usd=_cost(litellm, response),
        )
        with self._usage_lock:
            self.usage.calls += 1
            self.usage.prompt_tokens += result.prompt_tokens
            self.usage.completion_tokens += result.completion_tokens
            self.usage.cost_usd += result.cost_usd
        return result

    def close(self) -> None:
        if self.server is not None:
            self.server.stop()
            self._started_base = None


def _status(err: BaseException) -> str:
    status = getattr(err, "status_code", None)
    return f"(HTTP {status})" if status else ""


def litellm_price(model: str) -> tuple[float, float] | None:
    """(dollars per prompt token, per completion token) for ``model`` in litellm's price map
    (``litellm.model_cost``), tried as named and without its provider prefix; None if absent.

    With ``LITELLM_LOCAL_MODEL_COST_MAP=True`` (``import_litellm``'s default) litellm's map is
    the JSON file it ships: it is read directly, as importing litellm takes seconds.
    """
    import json
    import os
    from importlib.util import find_spec

    table: dict[str, Any] | None = None
    spec = find_spec("litellm")
    bundled = (Path(spec.submodule_search_locations[0]) / "model_prices_and_context_window_backup.json"
               if spec and spec.submodule_search_locations else None)
    if os.environ.get("LITELLM_LOCAL_MODEL_COST_MAP", "True").lower() == "true" and bundled and bundled.is_file():
        table = json.loads(bundled.read_text(encoding="utf-8"))
    else:
        table = import_litellm().model_cost
    for name in (model, model.split("/", 1)[-1]):
        entry = table.get(name)
        if entry and "input_cost_per_token" in entry and "output_cost_per_token" in entry:
            return float(entry["input_cost_per_token"]), float(entry["output_cost_per_token"])
    return None


def _cost(litellm: Any, response: Any) -> float:
    try:
        return float(litellm.completion_cost(completion_response=response) or 0.0)
    except Exception:  # noqa: BLE001 - unknown (local) models have no price: cost 0
        return 0.0
