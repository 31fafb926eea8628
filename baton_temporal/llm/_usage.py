"""Provider replies -> :class:`~baton_temporal.usage.LLMUsage`; pure functions.

The counting is genai-prices' own: its per-provider extractors (the ones
``genai_prices.extract_usage`` uses) read the reply, so the ledger prices exactly what
genai-prices would price from the raw reply: 1-hour cache writes, web searches, audio,
reasoning/thinking tokens included. Two things are added around it:

* what selects a price but is not a count: OpenAI's ``service_tier`` (top level of the
  reply), Anthropic's ``usage.service_tier`` and ``usage.speed``;
* checks the extractor does not make, so that no count is ever a silent 0: a reply
  without a usage block, or whose main counts (input and output) are missing or null,
  gives usage marked ``usage_unknown`` (stored unpriced, with the reason); a count that
  is negative, fractional, a string or a boolean raises :class:`UsageError` naming the
  field (the caller records the billed call as usage-unknown). Null *detail* fields
  (``cache_read_input_tokens: null``, ``prompt_tokens_details: null``) are the SDKs'
  normal way of saying 0 and count as 0; parts are clamped to their whole.

The one rule that matters: ``LLMUsage.input_tokens`` is the whole prompt. Anthropic
reports cache reads and writes *beside* ``input_tokens``, so they are added; OpenAI's
``prompt_tokens`` already contains its cached tokens. Reasoning tokens are part of the
output on both sides and are never added on top.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from functools import cache
from typing import Any

from pydantic import BaseModel, ValidationError

from ..usage import MAX_TOKENS, LLMUsage, UsageError

__all__ = [
    "normalize_usage",
    "unknown_usage",
    "usage_from_anthropic",
    "usage_from_openai",
    "usage_from_reply",
]

# Keys only the seed's own (already normalised) llm_usage shape uses.
_SEED_KEYS = frozenset({"cache_read_tokens", "cache_write_tokens", "reasoning_tokens"})
# genai-prices usage keys -> LLMUsage fields.
_FIELDS = {
    "input_tokens": "input_tokens",
    "output_tokens": "output_tokens",
    "cache_read_tokens": "cache_read_tokens",
    "cache_write_tokens": "cache_write_tokens",
    "cache_write_1h_tokens": "cache_write_1h_tokens",
    "output_reasoning_tokens": "reasoning_tokens",
    "input_audio_tokens": "input_audio_tokens",
    "output_audio_tokens": "output_audio_tokens",
    "web_searches": "web_search_requests",
}


def usage_from_reply(
    reply: Mapping[str, Any] | BaseModel,
    *,
    provider: str,
    model: str,
    latency_ms: int | None = None,
    call_id: str | None = None,
    requested_at: datetime | None = None,
) -> LLMUsage:
    """The usage of a whole provider reply (Anthropic Messages, OpenAI Chat or Responses).

    Raises :class:`~baton_temporal.usage.UsageError` when a count is not a whole number
    >= 0 or is beyond the ledger's bounds (``MAX_TOKENS``): the call was billed, but the
    number cannot be true. A reply without usage, or without its input or output count,
    gives usage marked ``usage_unknown`` (see :func:`unknown_usage`).

    Example::

        usage_from_reply(message.model_dump(), provider="anthropic", model=message.model)
    """
    data = _as_dict(reply)
    kind = "anthropic" if provider == "anthropic" else "openai"
    raw_block = data.get("usage")
    if raw_block is not None and not isinstance(raw_block, Mapping | BaseModel):
        raise UsageError(
            f"the {provider} reply for model {model!r} has a usage field that is a "
            f"{type(raw_block).__name__}, not an object; the reply was billed and is recorded "
            "with its usage unknown. Check what answers at the provider's base URL (a proxy?)"
        )
    block = _sub(raw_block)
    bad = _bad_counts(block)
    if bad:
        raise UsageError(
            f"the {provider} reply for model {model!r} reports token counts that are not "
            f"whole numbers >= 0: {'; '.join(bad[:5])}; the call was billed and is recorded "
            "with its usage unknown (unpriced). Check what answers at the provider's base "
            "URL (a proxy or a compatible server rewriting usage?)"
        )
    missing = _missing_main_counts(kind, block) if raw_block is not None else ["usage"]
    if missing:
        return unknown_usage(
            f"the reply reported no {' / '.join(missing)} (null or missing): its token "
            "counts, and so its cost, are not known",
            model=model,
            provider=provider,
            latency_ms=latency_ms,
            call_id=call_id,
            requested_at=requested_at,
        )
    counts = _extracted(kind, block, model)
    if counts is None:
        counts = _lenient(kind, block)
    _fit_parts(counts)
    if kind == "anthropic":
        tier, speed = block.get("service_tier"), block.get("speed")
    else:
        tier, speed = data.get("service_tier"), None
    try:
        return LLMUsage.model_validate(
            {
                "model": model,
                "provider": provider,
                "latency_ms": latency_ms,
                "call_id": call_id,
                "requested_at": requested_at,
                "service_tier": tier if isinstance(tier, str) and tier else None,
                "speed": speed if isinstance(speed, str) and speed else None,
                **counts,
            }
        )
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'usage'}: {e['msg']}" for e in err.errors()
        )
        raise UsageError(
            f"the {provider} reply for model {model!r} reports usage the ledger cannot "
            f"store ({problems}); counts above {MAX_TOKENS:,} tokens are refused as untrue"
        ) from None


def unknown_usage(
    reason: str,
    *,
    model: str,
    provider: str | None,
    latency_ms: int | None = None,
    call_id: str | None = None,
    requested_at: datetime | None = None,
) -> LLMUsage:
    """The usage of a billed call whose counts are not known: zeros, marked with why.

    The ledger stores it with status ``usage_unknown`` and no cost (unpriced, not 0).

    Example::

        unknown_usage("the reply had no usage block", model="gpt-4o", provider="openai")
    """
    return LLMUsage(
        model=model[:256] or "?",
        provider=provider,
        latency_ms=latency_ms,
        call_id=call_id,
        requested_at=requested_at,
        usage_unknown=reason[:1000],
    )


# Fields that hold counts: their names end so in every provider's usage block.
_COUNT_SUFFIXES = ("_tokens", "_requests")


# No provider nests its usage block deeper than 3 levels.
_MAX_USAGE_DEPTH = 8


def _bad_counts(block: Mapping[str, Any], where: str = "usage", depth: int = 0) -> list[str]:
    """Count fields (recursively) whose value is not a whole number >= 0 (null is fine
    here: see _missing_main_counts)."""
    if depth >= _MAX_USAGE_DEPTH:
        return [f"{where} nests deeper than {_MAX_USAGE_DEPTH} levels"]
    bad: list[str] = []
    for key, value in block.items():
        path = f"{where}.{str(key)[:64]}"
        if isinstance(value, Mapping):
            bad += _bad_counts(value, path, depth + 1)
        elif (
            isinstance(key, str)
            and key.endswith(_COUNT_SUFFIXES)
            and value is not None
            and not _whole(value)
        ):
            bad.append(f"{path} is {value!r}"[:200])
    return bad


def _whole(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return value >= 0
    if isinstance(value, float | Decimal):
        # 12.0 is 12 (some servers emit JSON numbers as floats); 12.5 and -1.0 are not.
        return math.isfinite(value) and value >= 0 and value == int(value)
    return False


def _missing_main_counts(kind: str, block: Mapping[str, Any]) -> list[str]:
    """The main counts (input and output) a block lacks or has as null."""
    if kind == "anthropic" or "input_tokens" in block or "output_tokens" in block:
        names = ("input_tokens", "output_tokens")
        if kind != "anthropic" and "prompt_tokens" in block:
            names = ("prompt_tokens", "completion_tokens")
    else:
        names = ("prompt_tokens", "completion_tokens")
    return [f"usage.{n}" for n in names if block.get(n) is None]


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
    usage = usage_from_reply(
        {"usage": _as_dict(usage)},
        provider="anthropic",
        model=model,
        latency_ms=latency_ms,
        call_id=call_id,
    )
    return usage if provider == "anthropic" else usage.model_copy(update={"provider": provider})


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
    result = usage_from_reply(
        {"usage": _as_dict(usage)},
        provider="openai",
        model=model,
        latency_ms=latency_ms,
        call_id=call_id,
    )
    return result if provider == "openai" else result.model_copy(update={"provider": provider})


def _extracted(kind: str, block: dict[str, Any], model: str) -> dict[str, int] | None:
    """Counts read by genai-prices' extractor for this shape, or None if it refuses it."""
    extractor = _extractor(kind, _flavor(kind, block))
    if extractor is None:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _, usage = extractor.extract({"model": model, "usage": block})
    except (ValueError, TypeError, KeyError):
        return None
    counts: dict[str, int] = {}
    for key, field in _FIELDS.items():
        value = usage.reported_value(key)
        counts[field] = _count(value)
    if kind == "anthropic" and "cache_creation_input_tokens" not in block:
        # Only the TTL breakdown: it is the write total, and part of the prompt.
        breakdown = _sub(block.get("cache_creation"))
        write = sum(_count(v) for v in breakdown.values())
        counts["cache_write_tokens"] = write
        counts["input_tokens"] += write
    return counts


def _flavor(kind: str, block: Mapping[str, Any]) -> str:
    if kind == "anthropic":
        return "default"
    chat_keys = {"prompt_tokens", "completion_tokens", "prompt_tokens_details"}
    return "chat" if chat_keys & block.keys() else "responses"


@cache
def _extractor(kind: str, flavor: str) -> Any:
    # Imported here: the price data is large, and many processes never read a reply.
    from genai_prices import data_snapshot

    for provider in data_snapshot.get_snapshot().providers:
        if provider.id == kind:
            for extractor in provider.extractors or ():
                if extractor.api_flavor == flavor:
                    return extractor
    return None


def _lenient(kind: str, u: dict[str, Any]) -> dict[str, int]:
    """Counts of a block the extractor refused: missing, null or nonsense fields are 0."""
    if kind == "anthropic":
        uncached = _count(u.get("input_tokens"))
        read = _count(u.get("cache_read_input_tokens"))
        breakdown = _sub(u.get("cache_creation"))
        write = _count(u.get("cache_creation_input_tokens")) or sum(
            _count(v) for v in breakdown.values()
        )
        tools = _sub(u.get("server_tool_use"))
        thinking = _sub(u.get("output_tokens_details"))
        return {
            "input_tokens": uncached + read + write,
            "output_tokens": _count(u.get("output_tokens")),
            "cache_read_tokens": read,
            "cache_write_tokens": write,
            "cache_write_1h_tokens": _count(breakdown.get("ephemeral_1h_input_tokens")),
            "reasoning_tokens": _count(thinking.get("thinking_tokens")),
            "web_search_requests": _count(tools.get("web_search_requests")),
        }
    if "prompt_tokens" in u or "completion_tokens" in u:
        prompt, completion = u.get("prompt_tokens"), u.get("completion_tokens")
        in_details = _sub(u.get("prompt_tokens_details"))
        out_details = _sub(u.get("completion_tokens_details"))
    else:  # Responses API: input_tokens / output_tokens with *_details
        prompt, completion = u.get("input_tokens"), u.get("output_tokens")
        in_details = _sub(u.get("input_tokens_details"))
        out_details = _sub(u.get("output_tokens_details"))
    return {
        "input_tokens": _count(prompt),
        "output_tokens": _count(completion),
        "cache_read_tokens": _count(in_details.get("cached_tokens")),
        "cache_write_tokens": _count(in_details.get("cache_write_tokens")),
        "reasoning_tokens": _count(out_details.get("reasoning_tokens")),
        "input_audio_tokens": _count(in_details.get("audio_tokens")),
        "output_audio_tokens": _count(out_details.get("audio_tokens")),
    }


def _fit_parts(c: dict[str, int]) -> None:
    """Clamp parts to their whole: the call was billed, and a row slightly off is better
    than a usage record lost to a validation error."""
    inp, out = c.get("input_tokens", 0), c.get("output_tokens", 0)
    c["cache_read_tokens"] = min(c.get("cache_read_tokens", 0), inp)
    c["cache_write_tokens"] = min(c.get("cache_write_tokens", 0), inp - c["cache_read_tokens"])
    c["cache_write_1h_tokens"] = min(c.get("cache_write_1h_tokens", 0), c["cache_write_tokens"])
    c["input_audio_tokens"] = min(c.get("input_audio_tokens", 0), inp)
    c["reasoning_tokens"] = min(c.get("reasoning_tokens", 0), out)
    c["output_audio_tokens"] = min(c.get("output_audio_tokens", 0), out)


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
    details = _sub(u.get("output_tokens_details"))
    if openai_keys & u.keys() or "reasoning_tokens" in details or "audio_tokens" in details:
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


def _sub(value: Any) -> dict[str, Any]:
    """A nested block: anything but a mapping (null, nonsense) counts as empty."""
    return _as_dict(value) if isinstance(value, Mapping | BaseModel) else {}


def _count(value: Any) -> int:
    """A token count from a provider field: missing, null, negative or nonsense is 0.
    A huge number is kept, for LLMUsage's bounds to refuse."""
    if isinstance(value, bool) or value is None:
        return 0
    if isinstance(value, float | Decimal):
        if not math.isfinite(value) or value != int(value):
            return 0
        value = int(value)
    if isinstance(value, int):
        return max(value, 0)
    return 0
