"""Secrets come from the environment only; a missing one is a clear error before any request."""

import pytest

import socket

from pytest_socket import SocketConnectBlockedError

from models.advisor_client import LiteLLMAdvisor
from models.litellm_connection import connection_kwargs, is_connection_error
from models.llama_server import free_port
from prompt_opt_api import EndpointUnreachable, EndpointUnusable


def test_key_is_read_from_the_named_variable(monkeypatch):
    monkeypatch.setenv("TEST_VLM_KEY", "sk-test-123")
    assert connection_kwargs(None, "TEST_VLM_KEY", "x") == {"api_key": "sk-test-123"}
    assert connection_kwargs("http://127.0.0.1:1/v1", None, "x") == {"api_base": "http://127.0.0.1:1/v1",
                                                                     "api_key": "not-needed"}
    assert connection_kwargs(None, None, "x") == {}


def test_missing_key_names_the_variable_not_a_value(monkeypatch):
    monkeypatch.delenv("TEST_VLM_KEY", raising=False)
    advisor = LiteLLMAdvisor(name="GPT4o", model="gpt-4o", api_key_env="TEST_VLM_KEY", num_retries=0)
    with pytest.raises(EndpointUnusable, match="GPT4o.*TEST_VLM_KEY is not set"):
        advisor.check_ready()  # what an optimizer that needs an advisor does before any work
    with pytest.raises(EndpointUnusable, match="GPT4o.*TEST_VLM_KEY is not set"):
        advisor.complete([{"role": "user", "content": "hi"}])
    assert advisor.usage.calls == 0


def test_unreachable_advisor_is_endpoint_unreachable_naming_the_url():
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    advisor = LiteLLMAdvisor(name="Local", model="openai/x", api_base=url, num_retries=2, timeout_s=10)
    with pytest.raises(EndpointUnreachable, match=f"advisor 'Local' cannot reach {url}"):
        advisor.complete([{"role": "user", "content": "hi"}])
    assert advisor.usage.calls == 0


def test_connection_errors_are_told_from_other_failures():
    try:
        try:
            raise ConnectionRefusedError(111, "Connection refused")
        except ConnectionRefusedError as inner:
            raise RuntimeError("litellm.APIConnectionError: OpenAIException - Connection error.") from inner
    except RuntimeError as wrapped:
        assert is_connection_error(wrapped)
    assert not is_connection_error(RuntimeError("litellm.APIConnectionError: could not parse the response"))
    assert not is_connection_error(TimeoutError("read timed out"))


def test_tests_cannot_open_connections_beyond_loopback():
    """pytest-socket is active: only 127.0.0.1/localhost/::1 may be connected to in-process.

    0.0.0.0 is not on the allow list; were the guard missing, connecting to it would only
    reach this machine (refused), so this check sends nothing anywhere either way.
    """
    with pytest.raises(SocketConnectBlockedError), socket.create_connection(("0.0.0.0", free_port()), timeout=1):
        pass
