"""Secrets come from the environment only; a missing one is a clear error before any request."""

import pytest

from models.advisor_client import AdvisorError, LiteLLMAdvisor
from models.litellm_connection import connection_kwargs


def test_key_is_read_from_the_named_variable(monkeypatch):
    monkeypatch.setenv("TEST_VLM_KEY", "sk-test-123")
    assert connection_kwargs(None, "TEST_VLM_KEY", "x") == {"api_key": "sk-test-123"}
    assert connection_kwargs("http://127.0.0.1:1/v1", None, "x") == {"api_base": "http://127.0.0.1:1/v1",
                                                                     "api_key": "not-needed"}
    assert connection_kwargs(None, None, "x") == {}


def test_missing_key_names_the_variable_not_a_value(monkeypatch):
    monkeypatch.delenv("TEST_VLM_KEY", raising=False)
    advisor = LiteLLMAdvisor(name="GPT4o", model="gpt-4o", api_key_env="TEST_VLM_KEY", num_retries=0)
    with pytest.raises(AdvisorError, match="GPT4o.*TEST_VLM_KEY is not set"):
        advisor.complete([{"role": "user", "content": "hi"}])
    assert advisor.usage.calls == 0
