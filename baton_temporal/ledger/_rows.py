"""The ledger's rows as values, without SQLAlchemy: what a usage record, a call intent
and a price quote become in ``workflow_step_stats``, and how timestamps and costs are
bound. Both writers use it (the SQLAlchemy store and the worker's light PostgreSQL
writer, see ``_pg_writer``), so both store identical values.

Example::

    row = usage_row(record, pricer)     # {"call_key": ..., "cost_usd": Decimal(...), ...}
    intent_row(intent)["status"]        # 'pending'
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from ..pricing import MAX_CALL_COST_USD, PriceQuote, Pricer
from ..usage import LLMUsage
from ._records import CallIntent, UsageRecord

__all__ = [
    "COST_PLACES",
    "COST_PRECISION",
    "DEBUG_LOG_TABLE",
    "INSERT_COLUMNS",
    "PROVISIONAL",
    "REPLACE_WHEN",
    "ROWS_PER_STATEMENT",
    "STEP_STAT_COLUMNS",
    "STEP_STAT_TABLE",
    "debug_json",
    "intent_row",
    "money_value",
    "price_columns",
    "quantize_cost",
    "quote_usage",
    "require_aware",
    "usage_columns",
    "usage_row",
    "usage_rows",
    "utc_value",
]

log = logging.getLogger("baton_temporal.ledger")

STEP_STAT_TABLE = "workflow_step_stats"
DEBUG_LOG_TABLE = "workflow_debug_logs"

# Every column of workflow_step_stats, in table order. The light writer's INSERT is
# built from this list; tests/ledger checks it against _schema.StepStat (names, order).
STEP_STAT_COLUMNS = (
    "id",
    "call_key",
    "workflow_id",
    "run_id",
    "workflow_name",
    "step",
    "activity_id",
    "attempt",
    "call_index",
    "call_id",
    "model",
    "provider",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cache_write_1h_tokens",
    "input_audio_tokens",
    "output_audio_tokens",
    "web_search_requests",
    "service_tier",
    "speed",
    "requested_at",
    "prompt_chars",
    "price_note",
    "latency_ms",
    "cost_usd",
    "price_model",
    "price_version",
    "status",
    "recorded_at",
)
# What an insert writes: all but the generated primary key.
INSERT_COLUMNS = STEP_STAT_COLUMNS[1:]

# Statuses whose row may still be replaced by the call's real usage.
PROVISIONAL = ("pending", "lost_reply")
# The upsert's rule: real usage replaces an intent or a lost-reply estimate, and
# step_failed replaces ok; nothing else is ever overwritten (an intent never is).
# Literal SQL, the same on PostgreSQL and SQLite.
REPLACE_WHEN = (
    f"({STEP_STAT_TABLE}.status IN ('pending', 'lost_reply') AND excluded.status <> 'pending')"
    f" OR ({STEP_STAT_TABLE}.status = 'ok' AND excluded.status = 'step_failed')"
)

# Bound parameters per statement: PostgreSQL allows 65,535, SQLite 32,766; stay well
# below both whatever the number of columns. 500 rows (the group commit's batch) at most.
_MAX_PARAMS = 30_000
ROWS_PER_STATEMENT = max(1, min(500, _MAX_PARAMS // len(INSERT_COLUMNS)))

# NUMERIC(20,10): ten places keep the price of one token of the cheapest models
# (a few 1e-9 USD) exact; ten places before the point are more than any ledger sums to.
COST_PRECISION = 20
COST_PLACES = 10
_COST_QUANTUM = Decimal(1).scaleb(-COST_PLACES)


def quantize_cost(value: Decimal) -> Decimal:
    """Round a cost to the ledger's 10 places, half away from zero (as PostgreSQL does).

    Rounding in Python before the value reaches the database makes both backends store
    the same number.
    """
    return value.quantize(_COST_QUANTUM, rounding=ROUND_HALF_UP)


def utc_value(value: datetime | None, *, sqlite: bool = False) -> datetime | None:
    """A timestamp as the ledger binds it: aware, in UTC (naive UTC on SQLite, which
    compares text). A naive value is refused: each backend would read it differently."""
    if value is None:
        return None
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(
            f"naive datetime {value!r} given to the ledger; use an aware one, "
            "e.g. datetime.now(UTC)"
        )
    value = value.astimezone(UTC)
    return value.replace(tzinfo=None) if sqlite else value


def money_value(value: Any, *, sqlite: bool = False) -> Any:
    """A cost as the ledger binds it: a Decimal of 10 places (on SQLite an integer count
    of 1e-10 USD, since SQLite has no exact decimal type)."""
    if value is None:
        return None
    cost = quantize_cost(Decimal(value))
    return int(cost.scaleb(COST_PLACES)) if sqlite else cost


def debug_json(value: Any) -> Any:
    """A debug log body as both backends can store it: PostgreSQL's jsonb refuses NUL
    characters, lone surrogates and non-finite numbers, which a prompt or a reply may hold
    (the whole log entry was then lost). NUL and surrogates become U+FFFD, NaN and the
    infinities their names as strings; everything else is kept as it is.

    Example::

        debug_json({"text": "a\x00b", "n": float("nan")})  # {'text': 'a\ufffdb', 'n': 'NaN'}
    """
    if isinstance(value, str):
        return _clean_text(value)
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, Mapping):
        return {_clean_text(str(k)): debug_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [debug_json(v) for v in value]
    return value


def _clean_text(text: str) -> str:
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in text)
    return text


def require_aware(value: datetime, name: str) -> datetime:
    """``value`` if it has a time zone, else ValueError naming the argument."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, e.g. datetime(2025, 1, 1, tzinfo=UTC)")
    return value


def quote_usage(pricer: Pricer, usage: LLMUsage) -> PriceQuote | None:
    """The pricer's quote for a call; None (unpriced) if the pricer failed, and an
    unpriced quote with the reason if it quoted a cost no call can have."""
    try:
        quote = pricer.cost(usage)
    except Exception:
        # A broken pricer must not lose the usage (nor block it forever with retries):
        # the row is stored unpriced, and the error is logged for someone to fix.
        log.exception("pricer %r failed for model %r; storing it unpriced", pricer, usage.model)
        return None
    if quote is None or quote.cost_usd is None:
        return quote
    cost = quote.cost_usd
    if not cost.is_finite() or cost < 0 or cost > MAX_CALL_COST_USD:
        log.error("pricer %r quoted %s for %r; storing it unpriced", pricer, quote, usage.model)
        return PriceQuote(
            cost_usd=None,
            price_model=quote.price_model,
            price_version=quote.price_version,
            note=f"pricer quoted {cost} USD, outside 0..{MAX_CALL_COST_USD} for one call",
        )
    return quote


def usage_columns(u: LLMUsage) -> dict[str, Any]:
    """The token counts and billing details of a call, by column."""
    return {
        "input_tokens": u.input_tokens,
        "output_tokens": u.output_tokens,
        "cache_read_tokens": u.cache_read_tokens,
        "cache_write_tokens": u.cache_write_tokens,
        "reasoning_tokens": u.reasoning_tokens,
        "cache_write_1h_tokens": u.cache_write_1h_tokens,
        "input_audio_tokens": u.input_audio_tokens,
        "output_audio_tokens": u.output_audio_tokens,
        "web_search_requests": u.web_search_requests,
        "service_tier": u.service_tier,
        "speed": u.speed,
        "requested_at": u.requested_at,
    }


def price_columns(quote: PriceQuote | None) -> dict[str, Any]:
    """A quote (None: unpriced) by column."""
    if quote is None:
        return {"cost_usd": None, "price_model": None, "price_version": None, "price_note": None}
    return {
        "cost_usd": None if quote.cost_usd is None else quantize_cost(quote.cost_usd),
        "price_model": quote.price_model,
        "price_version": quote.price_version,
        "price_note": quote.note,
    }


def usage_row(rec: UsageRecord, pricer: Pricer) -> dict[str, Any]:
    """The row of a usage record, priced at its call's time by ``pricer``."""
    u = rec.usage
    if u.requested_at is None:
        # Usage from before the call's time was carried: the record's time is the
        # nearest known (the end of the attempt).
        u = u.model_copy(update={"requested_at": rec.recorded_at})
    if u.usage_unknown is not None:
        # Billed, counts unknown: unpriced (NULL, never 0), the reason beside it.
        quote = None
        status = "usage_unknown"
    else:
        quote = quote_usage(pricer, u)
        status = rec.status
    row = {
        "call_key": rec.call_key,
        "workflow_id": rec.workflow_id,
        "run_id": rec.run_id,
        "workflow_name": rec.workflow_name,
        "step": rec.step,
        "activity_id": rec.activity_id,
        "attempt": rec.attempt,
        "call_index": rec.call_index,
        "call_id": u.call_id,
        "model": u.model,
        "provider": u.provider,
        **usage_columns(u),
        "latency_ms": u.latency_ms,
        "prompt_chars": None,
        **price_columns(quote),
        "status": status,
        "recorded_at": rec.recorded_at,
    }
    if u.usage_unknown is not None:
        row["price_note"] = f"usage unknown: {u.usage_unknown}"[:1000]
    return _storable(row)


def usage_rows(
    rows: UsageRecord | Mapping[str, Any] | Iterable[UsageRecord | Mapping[str, Any]],
    pricer: Pricer,
) -> list[dict[str, Any]]:
    """The rows of what ``record()`` takes: one record or many, each a
    :class:`UsageRecord` or a mapping validated as one (a record that came over the wire
    as JSON); one row per call key, the last one given.

    Example::

        usage_rows([record, record], pricer)   # one row
    """
    if isinstance(rows, UsageRecord | Mapping):
        rows = [rows]
    records = (r if isinstance(r, UsageRecord) else UsageRecord.model_validate(r) for r in rows)
    # One row per key even within a batch; the database enforces it across batches.
    return list({v["call_key"]: v for v in (usage_row(r, pricer) for r in records)}.values())


def _storable(row: dict[str, Any]) -> dict[str, Any]:
    # PostgreSQL's text columns refuse NUL characters: a reply's model or service tier, a
    # reported usage, a call id holding one would have its paid call refused for good
    # (and dropped). Both backends store U+FFFD instead, so their rows stay alike.
    return {k: _clean_text(v) if isinstance(v, str) else v for k, v in row.items()}


def intent_row(intent: CallIntent) -> dict[str, Any]:
    """The ``pending`` row of a call about to be sent: input estimated from the prompt
    size, unpriced, completed later by the call's usage."""
    return _storable(
        {
            "call_key": intent.call_key,
            "workflow_id": intent.workflow_id,
            "run_id": intent.run_id,
            "workflow_name": intent.workflow_name,
            "step": intent.step,
            "activity_id": intent.activity_id,
            "attempt": intent.attempt,
            "call_index": intent.call_index,
            "call_id": intent.call_id,
            "model": intent.model,
            "provider": intent.provider,
            **usage_columns(
                LLMUsage(model=intent.model, input_tokens=intent.estimated_input_tokens)
            ),
            "requested_at": intent.requested_at,
            "latency_ms": None,
            "prompt_chars": intent.prompt_chars,
            **price_columns(None),
            "status": "pending",
            "recorded_at": intent.requested_at,
        }
    )
