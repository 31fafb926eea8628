"""``UsageSink``: what a worker's steps need of a ledger, as a Protocol.

Two classes satisfy it: :class:`~baton_temporal.ledger.LedgerStore` (SQLAlchemy, both
backends, queries too) and the worker's light PostgreSQL writer
(:class:`~baton_temporal.ledger._pg_writer.PgUsageWriter`, no SQLAlchemy loaded). The
worker side is typed against this, so it never needs to import either to annotate.

Example::

    async def write(sink: UsageSink, records: list[UsageRecord]) -> int:
        return await sink.record(records)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Protocol

from ..pricing import Pricer
from ._records import CallIntent, UsageRecord

__all__ = ["UsageSink"]


class UsageSink(Protocol):
    """The ledger writes a worker makes (see ``LedgerStore`` for their semantics)."""

    url: str

    @property
    def pricer(self) -> Pricer: ...

    @property
    def dialect(self) -> str: ...

    async def begin_call(self, intent: CallIntent) -> bool: ...

    async def record(
        self, rows: UsageRecord | Mapping[str, Any] | Iterable[UsageRecord | Mapping[str, Any]]
    ) -> int: ...

    async def cancel_call(self, call_key: str) -> bool: ...

    async def cancel_calls(self, call_keys: Iterable[str]) -> int: ...

    async def reconcile(
        self,
        *,
        workflow_id: str,
        run_id: str,
        activity_id: str | None = None,
        before_attempt: int | None = None,
        call_key: str | None = None,
        reason: str = ...,
    ) -> int: ...

    async def record_debug(
        self,
        *,
        workflow_id: str,
        run_id: str,
        step: str,
        attempt: int,
        request: Any,
        response: Any,
        call_id: str | None = None,
        model: str | None = None,
        created_at: datetime | None = None,
    ) -> int: ...

    async def check_schema(self) -> None: ...

    async def migrate(self) -> None: ...

    async def close(self) -> None: ...
