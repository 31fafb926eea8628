"""One normalised record of what one LLM call consumed.

Providers count tokens differently; this model is the single place where they agree:

* ``input_tokens`` is the *total* prompt size, cache reads and writes included
  (Anthropic reports them apart, OpenAI includes cached tokens: both normalise to this).
* ``cache_read_tokens`` / ``cache_write_tokens`` are the parts of ``input_tokens``
  served from / written to the provider's prompt cache.
* ``reasoning_tokens`` is the part of ``output_tokens`` spent on hidden reasoning
  (OpenAI reasoning, Anthropic thinking); it is never added on top of ``output_tokens``.
* ``cache_write_1h_tokens`` is the part of ``cache_write_tokens`` written with a 1-hour
  lifetime (Anthropic bills it above the 5-minute rate); ``input_audio_tokens`` /
  ``output_audio_tokens`` are the audio parts of the input / output.
* ``web_search_requests`` counts server-side tool calls the provider bills per use;
  ``service_tier`` and ``speed`` are what the provider reported (they select prices).
* ``requested_at`` is when the request left: the call is priced at that day's prices.
* ``usage_unknown`` says why the counts are not known (the reply had no usage, or counts
  that cannot be true); such a call is stored unpriced with that reason, never as 0.

Counts are bounded (``MAX_TOKENS`` per field, ``MAX_TOOL_REQUESTS``): a number beyond them
is a bug or an attack, refused when the usage is validated rather than stored.

Example::

    usage = LLMUsage(model="gpt-4o", provider="openai", input_tokens=1200,
                     cache_read_tokens=1000, output_tokens=80)
    usage.uncached_input_tokens   # 200
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_serializer,
    model_validator,
)

__all__ = [
    "MAX_TOKENS",
    "MAX_TOOL_REQUESTS",
    "MAX_USAGE_ENTRIES",
    "LLMUsage",
    "UsageError",
    "parse_llm_usage",
]

# One step attempt reporting more calls than this is a bug (a loop appending the same
# entry, usage of a whole batch job): each entry becomes a ledger row and rides in
# Temporal payloads, so thousands would time out the write and retry it for ever.
MAX_USAGE_ENTRIES = 1000
_MAX_PROBLEMS_SHOWN = 5

# No model reads or writes 100M tokens in one call (the largest contexts are ~2M); a
# count beyond it would only overflow sums or hide a unit mistake.
MAX_TOKENS = 100_000_000
MAX_TOOL_REQUESTS = 100_000


class UsageError(ValueError):
    """A step returned an ``llm_usage`` value that cannot be recorded as it is."""


class LLMUsage(BaseModel):
    """Normalised token usage of one LLM call (one attempt of it)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str = Field(min_length=1, max_length=256)
    provider: str | None = Field(default=None, max_length=64)
    input_tokens: int = Field(default=0, ge=0, le=MAX_TOKENS, strict=True)
    output_tokens: int = Field(default=0, ge=0, le=MAX_TOKENS, strict=True)
    cache_read_tokens: int = Field(default=0, ge=0, le=MAX_TOKENS, strict=True)
    cache_write_tokens: int = Field(default=0, ge=0, le=MAX_TOKENS, strict=True)
    reasoning_tokens: int = Field(default=0, ge=0, le=MAX_TOKENS, strict=True)
    cache_write_1h_tokens: int = Field(default=0, ge=0, le=MAX_TOKENS, strict=True)
    input_audio_tokens: int = Field(default=0, ge=0, le=MAX_TOKENS, strict=True)
    output_audio_tokens: int = Field(default=0, ge=0, le=MAX_TOKENS, strict=True)
    web_search_requests: int = Field(default=0, ge=0, le=MAX_TOOL_REQUESTS, strict=True)
    service_tier: str | None = Field(default=None, max_length=32)
    speed: str | None = Field(default=None, max_length=32)
    requested_at: AwareDatetime | None = None
    latency_ms: int | None = Field(default=None, ge=0, le=86_400_000, strict=True)
    # Identifies the call within its step attempt, so that recording the same call twice
    # (a re-delivered record, or explicit `llm_usage` plus auto-capture) stores one row.
    call_id: str | None = Field(default=None, min_length=1, max_length=256)
    # Set when the provider's counts are not known (its reply had no usage block, or
    # counts that cannot be true): why. The call was billed; the ledger stores it with
    # status "usage_unknown" and no cost (unpriced, never 0), the reason beside it.
    usage_unknown: str | None = Field(default=None, min_length=1, max_length=1000)

    @field_serializer("requested_at")
    def _iso(self, value: datetime | None) -> str | None:
        # Text even in model_dump(): a step may return `reply.usage.model_dump()` in its
        # llm_usage, and step results must be plain JSON.
        return None if value is None else value.isoformat()

    @model_validator(mode="after")
    def _parts_fit_the_whole(self) -> LLMUsage:
        cached = self.cache_read_tokens + self.cache_write_tokens
        if cached > self.input_tokens:
            raise ValueError(
                f"cache_read_tokens + cache_write_tokens ({cached}) exceed input_tokens "
                f"({self.input_tokens}); input_tokens must be the total prompt size, "
                "cache tokens included"
            )
        if self.cache_write_1h_tokens > self.cache_write_tokens:
            raise ValueError(
                f"cache_write_1h_tokens ({self.cache_write_1h_tokens}) exceed "
                f"cache_write_tokens ({self.cache_write_tokens}); 1-hour writes are a part "
                "of cache_write_tokens"
            )
        if self.input_audio_tokens > self.input_tokens:
            raise ValueError(
                f"input_audio_tokens ({self.input_audio_tokens}) exceed input_tokens "
                f"({self.input_tokens}); audio tokens are a part of input_tokens"
            )
        if self.output_audio_tokens > self.output_tokens:
            raise ValueError(
                f"output_audio_tokens ({self.output_audio_tokens}) exceed output_tokens "
                f"({self.output_tokens}); audio tokens are a part of output_tokens"
            )
        if self.reasoning_tokens > self.output_tokens:
            raise ValueError(
                f"reasoning_tokens ({self.reasoning_tokens}) exceed output_tokens "
                f"({self.output_tokens}); reasoning tokens are a part of output_tokens"
            )
        return self

    @property
    def uncached_input_tokens(self) -> int:
        """Prompt tokens billed at the plain input rate."""
        return self.input_tokens - self.cache_read_tokens - self.cache_write_tokens


def parse_llm_usage(value: Any, *, step: str = "?") -> list[LLMUsage]:
    """Validate a step's ``llm_usage`` value: one mapping or a list of them.

    Raises :class:`UsageError` naming the step and the offending field, or when there
    are more than :data:`MAX_USAGE_ENTRIES` entries.
    """
    items = value if isinstance(value, list) else [value]
    if len(items) > MAX_USAGE_ENTRIES:
        raise UsageError(
            f"step {step!r} returned {len(items):,} llm_usage entries; at most "
            f"{MAX_USAGE_ENTRIES:,} calls can be reported by one step attempt. Report each "
            "call once, or split the work into several steps (fan_out)"
        )
    out: list[LLMUsage] = []
    for i, item in enumerate(items):
        if isinstance(item, LLMUsage):
            out.append(item)
            continue
        if not isinstance(item, dict):
            raise UsageError(
                f"step {step!r} returned llm_usage[{i}] of type {type(item).__name__}; "
                "llm_usage must be a mapping (or a list of mappings) with keys such as "
                "'model', 'input_tokens', 'output_tokens'"
            )
        try:
            out.append(LLMUsage.model_validate(item))
        except ValidationError as err:
            errors = err.errors()
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {e['msg']}"
                for e in errors[:_MAX_PROBLEMS_SHOWN]
            )
            if len(errors) > _MAX_PROBLEMS_SHOWN:
                # A mapping with thousands of stray keys must not make a 200 KB message.
                problems += f"; and {len(errors) - _MAX_PROBLEMS_SHOWN:,} more"
            raise UsageError(
                f"step {step!r} returned an invalid llm_usage[{i}]: {problems}. "
                f"Token counts must be integers from 0 to {MAX_TOKENS:,}, 'model' is required, "
                "and "
                f"the allowed keys are {sorted(LLMUsage.model_fields)}"
            ) from None
    return out
