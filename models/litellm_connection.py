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


_UNREACHABLE_HINTS = ("connection refused", "all connection attempts failed", "name or service not known",
                      "nodename nor servname", "no route to host", "network is unreachable",
                      "temporary failure in name resolution", "cannot connect to host")


def is_connection_error(err: BaseException) -> bool:
    """Whether ``err`` (or what it wraps) says the endpoint could not be reached at all.

    litellm wraps many unrelated failures in ``APIConnectionError``, so its type alone
    proves nothing: a builtin ``ConnectionError``/``httpx.ConnectError`` in the chain,
    or a refused/unresolvable connection in the message, does.
    """
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ConnectionError) or type(current).__name__ == "ConnectError":
            return True
        if any(hint in str(current).lower() for hint in _UNREACHABLE_HINTS):
            return True
        current = current.__cause__ or current.__context__
    return False
