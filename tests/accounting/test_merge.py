"""How explicit ``llm_usage`` and captured calls combine (pure functions)."""

from __future__ import annotations

import pytest

from baton_temporal.steps._accounting import merge_usage, split_usage
from baton_temporal.usage import LLMUsage, UsageError, parse_llm_usage


def u(model: str = "gpt-4o", i: int = 100, o: int = 10, call_id: str | None = None) -> LLMUsage:
    return LLMUsage(model=model, input_tokens=i, output_tokens=o, call_id=call_id)


def test_split_takes_llm_usage_out_of_a_dict_or_list_of_dicts() -> None:
    original = {"a": 1, "llm_usage": {"model": "x"}}
    body, found = split_usage(original)
    assert body == {"a": 1} and found == [{"model": "x"}]
    assert "llm_usage" in original  # the step's own object is not changed
    body, found = split_usage([{"llm_usage": [{"model": "x"}, {"model": "y"}]}, {"b": 2}])
    assert body == [{}, {"b": 2}] and [f["model"] for f in found] == ["x", "y"]


def test_same_call_id_counts_once() -> None:
    captured = [u(call_id="s/1/0")]
    assert merge_usage(captured, [u(call_id="s/1/0")]) == captured


def test_equal_numbers_without_call_id_are_calls_of_their_own() -> None:
    captured = [u(call_id="s/1/0"), u(call_id="s/1/1")]
    merged = merge_usage(captured, [u(), u(), u()])
    # Equal model and tokens prove nothing: only a call id says "the same call".
    assert len(merged) == 5


def test_a_model_name_prefix_with_equal_tokens_is_a_distinct_call() -> None:
    captured = [u(model="gpt-4o-mini", call_id="s/1/0")]
    merged = merge_usage(captured, [u(model="gpt-4o")])
    assert [m.model for m in merged] == ["gpt-4o-mini", "gpt-4o"]


def test_two_explicit_entries_sharing_a_call_id_are_refused() -> None:
    with pytest.raises(
        UsageError, match=r"llm_usage\[0\] and llm_usage\[1\] have the same call_id 'x'"
    ):
        merge_usage([], [u(call_id="x"), u(i=7, call_id="x")])


def test_different_calls_all_count() -> None:
    captured = [u(call_id="s/1/0")]
    merged = merge_usage(captured, [u(i=5), u(model="claude-opus-4", call_id="other")])
    assert len(merged) == 3


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"model": "x", "input_tokens": -1}, "greater than or equal to 0"),
        ({"model": "x", "input_tokens": 1.5}, "valid integer"),
        ({"model": "x", "input_tokens": "10"}, "valid integer"),
        ({"input_tokens": 1}, "model: Field required"),
        ({"model": "x", "tokens": 1}, "tokens: Extra inputs are not permitted"),
        ({"model": "x", "input_tokens": 5, "cache_read_tokens": 9}, "exceed input_tokens"),
        ({"model": "x", "output_tokens": 5, "reasoning_tokens": 9}, "reasoning_tokens"),
        ("gpt-4o", "must be a mapping"),
    ],
)
def test_malformed_llm_usage_is_named(value: object, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_llm_usage(value, step="s")
