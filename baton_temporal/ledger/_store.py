"""The usage ledger store: record LLM usage per call, query it, reconcile it, prune it.

One async SQLAlchemy engine over PostgreSQL (``postgresql+psycopg``) in production or an
embedded SQLite file (``sqlite+aiosqlite``) as the zero-setup default. Every write is
idempotent (an upsert on ``call_key``), so a record re-delivered after a timeout or a
worker crash never adds a second row, and a caller may retry a failed write blindly.

The store is split by concern: URLs, settings and errors (``_config``), migrations
(``_migrations``), record models (``_records``), the shared core (``_core``), the writes
(``_writer``) and the queries (``_queries``).

Example::

    async with LedgerStore.from_url("postgresql://baton@db/baton") as store:
        await store.migrate()
        await store.record(UsageRecord.for_attempt(
            [LLMUsage(model="gpt-4o", input_tokens=900, output_tokens=120)],
            workflow_id="wf-1", run_id="r-1", workflow_name="analysis",
            step="summarize", activity_id="3", attempt=1,
        ))
        totals = await store.workflow_totals("wf-1")
"""

from __future__ import annotations

import math
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from sqlalchemy import event
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import create_async_engine

from ..pricing import Pricer
from ._config import (
    DEFAULT_SQLITE_PATH,
    LEDGER_URL_ENV,
    LedgerConfigError,
    LedgerError,
    LedgerNotMigrated,
    LedgerUnavailable,
    LedgerWriteError,
    default_ledger_url,
    mask_secrets,
    safe_url,
    to_async_url,
    to_sync_url,
)
from ._migrations import alembic_config, sqlite_on_connect
from ._overview import LedgerOverview
from ._queries import LedgerQueries
from ._records import (
    CallIntent,
    DebugLogEntry,
    ModelCost,
    PruneResult,
    ReconcileResult,
    RepriceResult,
    StepStats,
    UsageRecord,
    WorkflowTotals,
)
from ._writer import LedgerWriter

__all__ = [
    "DEFAULT_SQLITE_PATH",
    "LEDGER_URL_ENV",
    "CallIntent",
    "DebugLogEntry",
    "LedgerConfigError",
    "LedgerError",
    "LedgerNotMigrated",
    "LedgerStore",
    "LedgerUnavailable",
    "LedgerWriteError",
    "ModelCost",
    "PruneResult",
    "ReconcileResult",
    "RepriceResult",
    "StepStats",
    "UsageRecord",
    "WorkflowTotals",
    "alembic_config",
    "default_ledger_url",
    "mask_secrets",
    "safe_url",
    "to_async_url",
    "to_sync_url",
]


class LedgerStore(LedgerWriter, LedgerQueries, LedgerOverview):
    """Async access to the usage ledger. Create with :meth:`from_url`; close when done.

    No global state: each store owns one engine (a connection pool), released by
    :meth:`close` or ``async with``.

    Example::

        async with LedgerStore.from_url() as store:      # $BATON_LEDGER_URL or SQLite
            print(await store.workflow_totals("wf-1"))
    """

    @classmethod
    def from_url(
        cls,
        url: str | URL | None = None,
        *,
        pricer: Pricer | None = None,
        auto_migrate: bool = False,
        connect_timeout: float = 10.0,
        **engine_options: Any,
    ) -> LedgerStore:
        """A store on ``url`` (default: :func:`default_ledger_url`).

        Plain ``postgresql://`` and ``sqlite:///`` URLs are rewritten to the async
        drivers. Nothing connects until the first use. ``pricer`` defaults to
        :func:`~baton_temporal.pricing.pricer_from_env` (a broken price configuration
        raises :class:`~baton_temporal.pricing.PricingError` here, at once). With
        ``auto_migrate`` the first use upgrades an unmigrated database instead of
        raising :class:`LedgerNotMigrated`. ``connect_timeout`` bounds connecting to PostgreSQL,
        waiting for SQLite's write lock and each usage INSERT, so an outage fails fast as
        :class:`LedgerUnavailable` instead of hanging.
        """
        is_default = url is None
        async_url = to_async_url(default_ledger_url() if url is None else url)
        options: dict[str, Any] = {"pool_pre_ping": True}
        connect_args: dict[str, Any] = {}
        if async_url.get_backend_name() == "sqlite":
            database = async_url.database or ""
            if database in ("", ":memory:") or async_url.query.get("mode") == "memory":
                raise LedgerConfigError(
                    "an in-memory SQLite ledger is not supported: every connection would "
                    "see a different, empty database; use a file, e.g. sqlite:///ledger.sqlite3"
                )
            if is_default:
                # The zero-setup default: create ./.baton/ on first use.
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            connect_args["timeout"] = connect_timeout
        elif "connect_timeout" not in async_url.query:
            connect_args["connect_timeout"] = max(1, math.ceil(connect_timeout))
        options["connect_args"] = {**connect_args, **engine_options.pop("connect_args", {})}
        options.update(engine_options)
        engine = create_async_engine(async_url, **options)
        if async_url.get_backend_name() == "sqlite":
            event.listen(engine.sync_engine, "connect", sqlite_on_connect)
        return cls(
            engine, pricer=pricer, auto_migrate=auto_migrate, connect_timeout=connect_timeout
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
