"""What every litellm call of ours shares: a quiet offline import and the connection arguments."""

from __future__ import annotations

import os
from typing import Any


def import_litellm() -> Any:
    """Import litellm without its network price-map fetch and without stdout banners."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm  # lazy: heavy import

    litellm.suppress_debug_info = True  # no "Provider List" banners on stdout
    return litellm


def connection_kwargs(api_base: str | None, api_key_env: str | None, who: str,
                      error: type[Exception] = RuntimeError) -> dict[str, Any]:
    """``api_base``/``api_key`` for ``litellm.completion``; the key is read from the environment.

    Raises:
        error: if ``api_key_env`` names a variable that is not set.
    """
    kwargs: dict[str, Any] = {}
    if api_base:
        kwargs["api_base"] = api_base
    if api_key_env:
        key = os.environ.get(api_key_env)
        if not key:
            raise error(f"{who}: environment variable {api_key_env} is not set")
        kwargs["api_key"] = key
    elif api_base:
        kwargs["api_key"] = "not-needed"  # local OpenAI-compatible servers ignore it
    return kwargs
