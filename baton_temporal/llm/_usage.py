"""Provider usage blocks -> :class:`~baton_temporal.usage.LLMUsage`; pure functions.

The one rule that matters: ``LLMUsage.input_tokens`` is the whole prompt. Anthropic
reports cache reads and writes *beside* ``input_tokens``, so they are added; OpenAI's
``prompt_tokens`` already contains its cached tokens, so nothing is added. Reasoning
tokens are part of the output on both sides and are never added on top.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from ..usage import LLMUsage

__all__ = ["normalize_usage", "usage_from_anthropic", "usage_from_openai"]

# Keys only the seed's own (already normalised) llm_usage shape uses.
_SEED_KEYS = frozenset({"cache_read_tokens", "cache_write_tokens", "reasoning_tokens"})


def usage_from_anthropic(
    usage: Mapping[str, Any] | BaseModel | None,
    *,
    model: str,
    latency_ms: int | None = None,
    provider: str | None = "anthropic",
    call_id: str | None = None,
) -> LLMUsage:
    """Normalise an Anthropic Messages ``usage`` block.

    Example::

        usage_from_anthropic({"input_tokens": 20, "output_tokens": 5,
                              "cache_read_input_tokens": 1000,
                              "cache_creation_input_tokens": 200}, model="claude-x")
        # input_tokens=1220, cache_read_tokens=1000, cache_write_tokens=200, output_tokens=5
    """
    u = _as_dict(usage)
    uncached = _count(u.get("input_tokens"))
    read = _count(u.get("cache_read_input_tokens"))
    write = _count(u.get("cache_creation_input_tokens"))
    if write == 0:
        # Newer responses break writes down by TTL; use the breakdown if the total is absent.
        breakdown = _as_dict(u.get("cache_creation"))
        write = sum(_count(v) for v in breakdown.values())
    return LLMUsage(
        model=model,
        provider=provider,
        input_tokens=uncached + read + write,
        output_tokens=_count(u.get("output_tokens")),
        cache_read_tokens=read,
        cache_write_tokens=write,
        latency_ms=latency_ms,
        call_id=call_id,
    )


def usage_from_openai(
    usage: Mapping[str, Any] | BaseModel | None,
    *,
    model: str,
    latency_ms: int | None = None,
    provider: str | None = "openai",
    call_id: str | None = None,
) -> LLMUsage:
    """Normalise an OpenAI usage block (Chat Completions or Responses API shape).

    Example::

        usage_from_openai({"prompt_tokens": 1200, "completion_tokens": 300,
                           "prompt_tokens_details": {"cached_tokens": 1000},
                           "completion_tokens_details": {"reasoning_tokens": 256}},
                          model="o3-mini")
        # input_tokens=1200, cache_read_tokens=1000, output_tokens=300, reasoning_tokens=256
    """
    u = _as_dict(usage)
    if "prompt_tokens" in u or "completion_tokens" in u:
        prompt, completion = u.get("prompt_tokens"), u.get("completion_tokens")
        in_details = _as_dict(u.get("prompt_tokens_details"))
        out_details = _as_dict(u.get("completion_tokens_details"))
    else:  # Responses API: input_tokens / output_tokens with *_details
        prompt, completion = u.get("input_tokens"), u.get("output_tokens")
        in_details = _as_dict(u.get("input_tokens_details"))
        out_details = _as_dict(u.get("output_tokens_details"))
    input_tokens = _count(prompt)
    output_tokens = _count(completion)
    # Clamped rather than rejected: the call was billed, and a row that is slightly off
    # is better than a usage record lost to a validation error.
    cached = min(_count(in_details.get("cached_tokens")), input_tokens)
    reasoning = min(_count(out_details.get("reasoning_tokens")), output_tokens)
    return LLMUsage(
        model=model,
        provider=provider,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_read_tokens=cached,
        reasoning_tokens=reasoning,
        latency_ms=latency_ms,
        call_id=call_id,
    )


def normalize_usage(
    usage: Mapping[str, Any] | BaseModel | None,
    *,
    model: str | None = None,
    provider: str | None = None,
    latency_ms: int | None = None,
    call_id: str | None = None,
) -> LLMUsage:
    """Normalise a usage block of any known shape, told apart by its keys.

    * ``prompt_tokens`` / ``*_tokens_details`` -> OpenAI (cached tokens already inside);
    * ``cache_read_tokens`` / ``cache_write_tokens`` / ``reasoning_tokens`` -> the seed's
      own ``llm_usage`` keys, already normalised (``input_tokens`` includes cache) and
      validated as given (keys LLMUsage does not know are ignored);
    * otherwise Anthropic (``cache_*_input_tokens`` added to ``input_tokens``). A bare
      ``{"input_tokens", "output_tokens"}`` means the same in every shape.

    ``model`` (required unless the block names one), ``provider``, ``latency_ms`` and
    ``call_id`` fill in what a seed-shaped block does not carry itself.

    Example::

        normalize_usage({"input_tokens": 10, "output_tokens": 2, "cache_read_tokens": 4},
                        model="claude-x").cache_read_tokens   # 4
    """
    u = _as_dict(usage)
    openai_keys = {"prompt_tokens", "completion_tokens", "input_tokens_details"}
    if openai_keys & u.keys() or "output_tokens_details" in u:
        return usage_from_openai(
            u,
            model=_model(model),
            latency_ms=latency_ms,
            provider=provider or "openai",
            call_id=call_id,
        )
    if _SEED_KEYS & u.keys():
        # Already normalised, and written by the user rather than a provider: validated
        # as given (LLMUsage rejects inconsistent counts) instead of silently clamped.
        values = {k: v for k, v in u.items() if k in LLMUsage.model_fields and v is not None}
        if "model" not in values:
            values["model"] = _model(model)
        values.setdefault("provider", provider)
        values.setdefault("latency_ms", latency_ms)
        values.setdefault("call_id", call_id)
        return LLMUsage.model_validate(values)
    return usage_from_anthropic(
        u,
        model=_model(model),
        latency_ms=latency_ms,
        provider=provider or "anthropic",
        call_id=call_id,
    )


def _model(model: Any) -> str:
    if not isinstance(model, str) or not model:
        raise ValueError("the usage block names no model; pass model='...'")
    return model


def _as_dict(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, BaseModel):
        return value.model_dump()
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(
        f"a usage block must be a mapping or a pydantic model, got {type(value).__name__}"
    )


def _count(value: Any) -> int:
    """A token count from a provider field: missing, null or nonsense counts as 0."""
    if isinstance(value, bool) or value is None:
        return 0
    if isinstance(value, int):
        return max(value, 0)
    if isinstance(value, float) and value.is_integer():
        return max(int(value), 0)
    return 0
