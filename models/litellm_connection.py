"""What every litellm call of ours shares: a quiet offline import and the connection arguments."""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

log = logging.getLogger(__name__)


def import_litellm() -> Any:
    """Import litellm without its network price-map fetch and without stdout banners."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm  # lazy: heavy import

    litellm.suppress_debug_info = True  # no "Provider List" banners on stdout
    for name in ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy", "litellm"):
        logging.getLogger(name).setLevel(logging.WARNING)  # one INFO block per request otherwise
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
    proves nothing; a refused connection or an unresolvable host in the chain
    (``ConnectionRefusedError``, ``socket.gaierror``, httpx's ``ConnectError``) or in the
    message does. A reset or dropped connection is not "unreachable": it is retried.
    """
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (ConnectionRefusedError, socket.gaierror)) or type(current).__name__ == "ConnectError":
            return True
        if any(hint in str(current).lower() for hint in _UNREACHABLE_HINTS):
            return True
        current = current.__cause__ or current.__context__
    return False


def _status_of(err: BaseException) -> int | None:
    for candidate in (getattr(err, "status_code", None), getattr(getattr(err, "response", None), "status_code", None)):
        if isinstance(candidate, int):
            return candidate
    return None


def classify_error(err: BaseException) -> str:
    """What a failed request means: ``unreachable``, ``fatal`` (bad key, unknown model),
    ``retry`` (timeout, 408/409/429, 5xx) or ``give_up`` (a bad request: asking again
    would fail the same way, but the endpoint itself works)."""
    if is_connection_error(err):
        return "unreachable"
    status = _status_of(err)
    name = type(err).__name__
    if status in (401, 403) or name in ("AuthenticationError", "PermissionDeniedError"):
        return "fatal"
    if status == 404 or name == "NotFoundError":
        return "fatal"
    if isinstance(err, TimeoutError) or name in ("Timeout", "APITimeoutError") or status in (408, 409, 429):
        return "retry"
    if (status is not None and status >= 500) or name in ("RateLimitError", "InternalServerError",
                                                          "ServiceUnavailableError", "APIConnectionError"):
        return "retry"
    if status is not None and 400 <= status < 500:
        return "give_up"
    return "retry"


def retry_after_s(err: BaseException) -> float | None:
    """Seconds the server asked to wait (``Retry-After`` / ``retry-after-ms``), if it said."""
    headers: Any = getattr(err, "litellm_response_headers", None) or getattr(getattr(err, "response", None), "headers", None)
    if not headers:
        return None
    try:
        if headers.get("retry-after-ms") is not None:
            return float(headers["retry-after-ms"]) / 1000.0
        if headers.get("retry-after") is not None:
            return float(headers["retry-after"])
    except (TypeError, ValueError):
        return None
    return None


def call_with_retries(fn: Any, *, who: str, retries: int, initial_wait_s: float = 1.0, max_wait_s: float = 60.0,
                      on_retry: Any = None) -> Any:
    """Call ``fn()``; retry what can heal (timeouts, 429 honouring Retry-After, 5xx, a refused
    connection) with
    exponential backoff and jitter (tenacity), never what cannot (401/403, unknown model,
    bad request). The last error is re-raised as it was; ``classify_error`` tells the
    caller what it means.

    Args:
        fn: The request.
        who: For log lines, e.g. ``advisor 'GPT4o'``.
        retries: Retries after the first attempt.
        initial_wait_s: First backoff; doubles each retry (plus jitter), capped at ``max_wait_s``.
        max_wait_s: Cap of one wait, also of a server's Retry-After.
        on_retry: Called with the exception before each retry (counting, tests).
    """
    from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

    backoff = wait_exponential_jitter(initial=initial_wait_s, max=max_wait_s, jitter=initial_wait_s)

    def wait(state: Any) -> float:
        asked = retry_after_s(state.outcome.exception())
        return min(asked, max_wait_s) if asked is not None else backoff(state)

    def before_sleep(state: Any) -> None:
        err = state.outcome.exception()
        log.warning("%s: attempt %d failed (%s%s); retrying", who, state.attempt_number, type(err).__name__,
                    f" {_status_of(err)}" if _status_of(err) else "")
        if on_retry is not None:
            on_retry(err)

    # An unreachable endpoint is retried too: a server may be restarting. Only after the
    # retries does the caller stop the run.
    retrying = Retrying(stop=stop_after_attempt(retries + 1), wait=wait, reraise=True,
                        retry=retry_if_exception(lambda err: classify_error(err) in ("retry", "unreachable")),
                        before_sleep=before_sleep)
    return retrying(fn)
