"""Usage normalisation: pure functions over the providers' real usage shapes."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from baton_temporal.llm import normalize_usage, usage_from_anthropic, usage_from_openai
from baton_temporal.usage import LLMUsage

# As the Messages API returns it when a prompt-cache prefix was read and another written.
ANTHROPIC_USAGE = {
    "input_tokens": 21,
    "cache_creation_input_tokens": 188,
    "cache_read_input_tokens": 1800,
    "cache_creation": {"ephemeral_5m_input_tokens": 188, "ephemeral_1h_input_tokens": 0},
    "output_tokens": 393,
    "service_tier": "standard",
    "server_tool_use": None,
}
# As Chat Completions returns it for a reasoning model with a cached prefix.
OPENAI_USAGE = {
    "prompt_tokens": 2006,
    "completion_tokens": 300,
    "total_tokens": 2306,
    "prompt_tokens_details": {"cached_tokens": 1920, "audio_tokens": 0},
    "completion_tokens_details": {
        "reasoning_tokens": 192,
        "audio_tokens": 0,
        "accepted_prediction_tokens": 0,
        "rejected_prediction_tokens": 0,
    },
}


def test_anthropic_input_adds_cache_reads_and_writes() -> None:
    usage = usage_from_anthropic(ANTHROPIC_USAGE, model="claude-sonnet-4-20250514", latency_ms=12)
    assert usage == LLMUsage(
        model="claude-sonnet-4-20250514",
        provider="anthropic",
        input_tokens=21 + 1800 + 188,
        output_tokens=393,
        cache_read_tokens=1800,
        cache_write_tokens=188,
        service_tier="standard",
        latency_ms=12,
    )
    assert usage.uncached_input_tokens == 21


def test_anthropic_cache_write_from_ttl_breakdown_when_total_missing() -> None:
    usage = usage_from_anthropic(
        {
            "input_tokens": 5,
            "output_tokens": 1,
            "cache_creation": {"ephemeral_5m_input_tokens": 100, "ephemeral_1h_input_tokens": 50},
        },
        model="claude-x",
    )
    assert (usage.input_tokens, usage.cache_write_tokens) == (155, 150)


def test_openai_prompt_tokens_already_include_cached_and_reasoning_is_part_of_output() -> None:
    usage = usage_from_openai(OPENAI_USAGE, model="o3-mini", latency_ms=7)
    assert usage == LLMUsage(
        model="o3-mini",
        provider="openai",
        input_tokens=2006,
        output_tokens=300,
        cache_read_tokens=1920,
        cache_write_tokens=0,
        reasoning_tokens=192,
        latency_ms=7,
    )
    assert usage.uncached_input_tokens == 86


def test_openai_responses_api_shape() -> None:
    usage = usage_from_openai(
        {
            "input_tokens": 50,
            "input_tokens_details": {"cached_tokens": 40},
            "output_tokens": 30,
            "output_tokens_details": {"reasoning_tokens": 20},
            "total_tokens": 80,
        },
        model="o4-mini",
    )
    assert (usage.input_tokens, usage.cache_read_tokens) == (50, 40)
    assert (usage.output_tokens, usage.reasoning_tokens) == (30, 20)


@pytest.mark.parametrize(
    ("block", "missing"),
    [
        (None, "usage.prompt_tokens"),
        ({}, "usage.prompt_tokens"),
        ({"prompt_tokens": None, "completion_tokens": None}, "usage.completion_tokens"),
        ({"prompt_tokens": 3}, "usage.completion_tokens"),
    ],
)
def test_openai_missing_main_counts_are_usage_unknown_never_zero(
    block: dict | None, missing: str
) -> None:
    usage = usage_from_openai(block, model="gpt-4o")
    assert usage.usage_unknown is not None and missing in usage.usage_unknown


def test_null_detail_fields_count_as_zero() -> None:
    # The SDKs' own objects dump absent details as null: that is 0, not unknown.
    usage = usage_from_openai(
        {
            "prompt_tokens": 3,
            "completion_tokens": 1,
            "prompt_tokens_details": None,
            "completion_tokens_details": None,
        },
        model="gpt-4o",
    )
    assert usage.usage_unknown is None and (usage.input_tokens, usage.output_tokens) == (3, 1)
    usage = usage_from_anthropic(
        {
            "input_tokens": 4,
            "output_tokens": 2,
            "cache_read_input_tokens": None,
            "cache_creation_input_tokens": None,
            "server_tool_use": None,
        },
        model="claude-x",
    )
    assert usage.usage_unknown is None and (usage.input_tokens, usage.cache_read_tokens) == (4, 0)


def test_anthropic_null_output_is_usage_unknown_never_zero() -> None:
    usage = usage_from_anthropic(
        {"input_tokens": 4, "output_tokens": None, "cache_read_input_tokens": None},
        model="claude-x",
    )
    assert usage.usage_unknown is not None and "usage.output_tokens" in usage.usage_unknown


def test_inconsistent_provider_counts_are_clamped_not_lost() -> None:
    # A billed call must still produce a row even if the provider's numbers disagree.
    usage = usage_from_openai(
        {
            "prompt_tokens": 10,
            "completion_tokens": 2,
            "prompt_tokens_details": {"cached_tokens": 50},
            "completion_tokens_details": {"reasoning_tokens": 9},
        },
        model="gpt-4o",
    )
    assert (usage.cache_read_tokens, usage.reasoning_tokens) == (10, 2)


def test_sdk_pydantic_usage_objects_are_accepted() -> None:
    from anthropic.types import Usage as AnthropicUsage
    from openai.types.completion_usage import CompletionUsage

    a = usage_from_anthropic(AnthropicUsage.model_validate(ANTHROPIC_USAGE), model="claude-x")
    o = usage_from_openai(CompletionUsage.model_validate(OPENAI_USAGE), model="o3")
    assert (a.input_tokens, a.cache_read_tokens) == (2009, 1800)
    assert (o.input_tokens, o.reasoning_tokens) == (2006, 192)


def test_normalize_usage_tells_the_shapes_apart() -> None:
    anthropic = normalize_usage(ANTHROPIC_USAGE, model="claude-x")
    openai = normalize_usage(OPENAI_USAGE, model="o3")
    assert (anthropic.provider, anthropic.input_tokens) == ("anthropic", 2009)
    assert (openai.provider, openai.input_tokens) == ("openai", 2006)


def test_normalize_usage_accepts_the_seeds_own_keys_as_already_normalised() -> None:
    seed = {
        "model": "claude-opus-4-20250514",
        "input_tokens": 1200,
        "output_tokens": 80,
        "cache_read_tokens": 1000,
        "cache_write_tokens": 100,
        "latency_ms": 950,
    }
    usage = normalize_usage(seed)
    assert usage.model == "claude-opus-4-20250514"
    assert (usage.input_tokens, usage.cache_read_tokens, usage.cache_write_tokens) == (
        1200,
        1000,
        100,
    )
    assert usage.latency_ms == 950
    with pytest.raises(ValidationError):
        # Seed-shaped input is the user's own: inconsistent counts are an error, not clamped.
        normalize_usage({**seed, "cache_read_tokens": 5000})


def test_normalize_usage_needs_a_model() -> None:
    with pytest.raises(ValueError, match="model"):
        normalize_usage({"input_tokens": 1})


def test_hostile_usage_blocks_are_refused_by_name() -> None:
    from baton_temporal.llm._usage import usage_from_reply
    from baton_temporal.usage import UsageError

    deep: dict = {"input_tokens": 1, "output_tokens": 1}
    node = deep
    for _ in range(50):
        node["x"] = {}
        node = node["x"]
    cases = [
        ({"usage": deep}, "nests deeper than 8 levels"),
        ({"usage": [1, 2]}, "usage field that is a list"),
        ({"usage": {"input_tokens": True, "output_tokens": 1}}, "usage.input_tokens is True"),
        ({"usage": {"input_tokens": 1, "output_tokens": float("nan")}}, "output_tokens is nan"),
        ({"usage": {"input_tokens": 1, "output_tokens": 1, "total_tokens": -2}}, "total_tokens"),
    ]
    for reply, named in cases:
        with pytest.raises(UsageError, match="base URL") as caught:
            usage_from_reply(reply, provider="anthropic", model="claude-x")
        assert named in str(caught.value)
    # 12.0 is a whole number (some servers write every number as a float).
    ok = usage_from_reply(
        {"usage": {"prompt_tokens": 12.0, "completion_tokens": 3}}, provider="openai", model="m"
    )
    assert (ok.input_tokens, ok.output_tokens, ok.usage_unknown) == (12, 3, None)
