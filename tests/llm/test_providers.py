"""Provider inference, configuration and the retry-after rules: no network involved."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta

import pytest
from temporalio.exceptions import ApplicationError

from baton_temporal.llm import (
    LLMClients,
    LLMConfig,
    UnknownModelError,
    complete,
    is_retryable_status,
    redact,
    resolve_provider,
    retry_delay_from_headers,
)


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("claude-sonnet-4-20250514", ("anthropic", "claude-sonnet-4-20250514")),
        ("claude-3-5-haiku-latest", ("anthropic", "claude-3-5-haiku-latest")),
        ("gpt-4o", ("openai", "gpt-4o")),
        ("gpt-4.1-mini", ("openai", "gpt-4.1-mini")),
        ("chatgpt-4o-latest", ("openai", "chatgpt-4o-latest")),
        ("o1", ("openai", "o1")),
        ("o3-mini", ("openai", "o3-mini")),
        ("o4-mini-2025-04-16", ("openai", "o4-mini-2025-04-16")),
        ("ft:gpt-4o-mini:acme::abc123", ("openai", "ft:gpt-4o-mini:acme::abc123")),
        ("anthropic:my-claude-proxy", ("anthropic", "my-claude-proxy")),
        ("openai:gpt-4o", ("openai", "gpt-4o")),
        ("openai:custom-deployment", ("openai", "custom-deployment")),
        ("openai-compatible:llama3.2", ("openai-compatible", "llama3.2")),
        ("openai-compatible:llama3.2:3b", ("openai-compatible", "llama3.2:3b")),
        ("openai-compatible:gpt-oss:20b", ("openai-compatible", "gpt-oss:20b")),
    ],
)
def test_resolve_provider(model: str, expected: tuple[str, str]) -> None:
    assert resolve_provider(model) == expected


@pytest.mark.parametrize(
    "model", ["llama3.2", "gemini-2.5-pro", "omni", "gpt-oss:20b", "mistral:7b", "", "openai:"]
)
def test_unknown_models_are_rejected_with_the_fix(model: str) -> None:
    with pytest.raises(UnknownModelError) as caught:
        resolve_provider(model)
    err = caught.value
    assert isinstance(err, ApplicationError) and isinstance(err, ValueError)
    assert err.type == "UnknownModel" and err.non_retryable
    assert repr(model) in str(err) or "colon" in str(err) or "non-empty" in str(err)
    if model == "llama3.2":
        assert "openai-compatible:llama3.2" in str(err)


async def test_complete_rejects_an_unknown_model_before_any_request(config: LLMConfig) -> None:
    with pytest.raises(ApplicationError) as caught:
        await complete([{"role": "user", "content": "hi"}], model="mixtral-8x7b", config=config)
    assert caught.value.type == "UnknownModel"
    assert "mixtral-8x7b" in str(caught.value) and "prefix" in str(caught.value).lower()


def test_config_repr_and_dump_never_show_keys() -> None:
    config = LLMConfig(anthropic_api_key="sk-ant-TOPSECRET", openai_api_key="sk-TOPSECRET2")
    for text in (repr(config), str(config), str(config.model_dump()), config.model_dump_json()):
        assert "TOPSECRET" not in text
    assert config.secrets() == ["sk-ant-TOPSECRET", "sk-TOPSECRET2"]


def test_config_from_env() -> None:
    config = LLMConfig.from_env(
        {
            "ANTHROPIC_API_KEY": "a-key",
            "ANTHROPIC_BASE_URL": "http://a",
            "OPENAI_API_KEY": "o-key",
            "OPENAI_BASE_URL": "http://o/v1",
            "BATON_OPENAI_COMPATIBLE_BASE_URL": "http://localhost:11434/v1",
            "BATON_OPENAI_COMPATIBLE_API_KEY": "",
            "BATON_LLM_TIMEOUT_S": "12.5",
        }
    )
    assert config.anthropic_api_key is not None
    assert config.anthropic_api_key.get_secret_value() == "a-key"
    assert config.openai_base_url == "http://o/v1"
    assert config.openai_compatible_base_url == "http://localhost:11434/v1"
    assert config.openai_compatible_api_key is None  # empty means unset
    assert config.timeout_s == 12.5
    with pytest.raises(Exception):  # noqa: B017 - frozen
        config.timeout_s = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("model", "env_var"),
    [("claude-sonnet-4-20250514", "ANTHROPIC_API_KEY"), ("gpt-4o", "OPENAI_API_KEY")],
)
async def test_missing_key_is_non_retryable_and_names_the_variable(
    model: str, env_var: str
) -> None:
    config = LLMConfig(
        anthropic_base_url="http://127.0.0.1:9", openai_base_url="http://127.0.0.1:9"
    )
    with pytest.raises(ApplicationError) as caught:
        await complete([{"role": "user", "content": "hi"}], model=model, config=config)
    assert caught.value.type == "MissingAPIKey" and caught.value.non_retryable
    assert env_var in str(caught.value)


async def test_openai_compatible_needs_a_base_url_not_a_key() -> None:
    with pytest.raises(ApplicationError) as caught:
        await complete(
            [{"role": "user", "content": "hi"}],
            model="openai-compatible:llama3.2",
            config=LLMConfig(),
        )
    assert caught.value.type == "MissingBaseURL" and caught.value.non_retryable
    assert "BATON_OPENAI_COMPATIBLE_BASE_URL" in str(caught.value)


@pytest.mark.parametrize(
    "messages",
    [[], "hello", [{"role": "tool", "content": "x"}], [{"role": "user", "content": 3}], [1]],
)
async def test_bad_messages_are_non_retryable(messages: object, config: LLMConfig) -> None:
    with pytest.raises(ApplicationError) as caught:
        await complete(messages, model="gpt-4o", config=config)  # type: ignore[arg-type]
    assert caught.value.type == "InvalidLLMRequest" and caught.value.non_retryable


def test_retryable_statuses() -> None:
    assert all(is_retryable_status(s) for s in (408, 409, 429, 500, 502, 503, 529))
    assert not any(is_retryable_status(s) for s in (400, 401, 403, 404, 413, 422))


def test_retry_delay_from_headers() -> None:
    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert retry_delay_from_headers({"retry-after": "2"}) == timedelta(seconds=2)
    assert retry_delay_from_headers({"Retry-After": "1.5"}) == timedelta(seconds=1.5)
    assert retry_delay_from_headers({"retry-after-ms": "250"}) == timedelta(milliseconds=250)
    # retry-after-ms is the more precise one and wins
    both = {"retry-after-ms": "250", "retry-after": "9"}
    assert retry_delay_from_headers(both) == timedelta(milliseconds=250)
    http_date = "Wed, 01 Jan 2025 12:00:30 GMT"
    assert retry_delay_from_headers({"retry-after": http_date}, now=now) == timedelta(seconds=30)
    for useless in ({}, None, {"retry-after": "soon"}, {"retry-after": "-1"}, {"x": "1"}):
        assert retry_delay_from_headers(useless, now=now) is None


def test_redact() -> None:
    assert redact("key sk-abc123 leaked", ["sk-abc123"]) == "key *** leaked"
    assert redact("abc", ["a"]) == "abc"  # too short to scrub without garbling the text


def test_unknown_model_error_survives_pickling() -> None:
    # Activities may run in process pools; errors must cross process boundaries intact.
    err = pickle.loads(pickle.dumps(UnknownModelError("no provider for 'x'")))
    assert isinstance(err, UnknownModelError) and err.non_retryable
    assert str(err) == "UnknownModel: no provider for 'x'"


async def test_clients_are_cached_per_endpoint_and_show_no_key() -> None:
    async with LLMClients() as clients:
        config = LLMConfig(openai_api_key="sk-SECRET-FOR-REPR")
        first = clients.get("openai", config)
        assert clients.get("openai", config) is first
        other = LLMConfig(openai_api_key="sk-SECRET-FOR-REPR", openai_base_url="http://x/v1")
        assert clients.get("openai", other) is not first
        assert "SECRET" not in repr(clients) and "SECRET" not in str(clients._clients.keys())
