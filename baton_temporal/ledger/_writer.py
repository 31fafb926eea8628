"""The ledger's writes: usage rows, call intents, reconciliation, repricing, pruning.

A call's row goes through up to three states, each write idempotent on ``call_key``:

1. ``pending``: the intent, written before the request leaves (:meth:`begin_call`);
2. ``ok`` / ``step_failed``: the usage, written when the reply arrives or the attempt
   ends (:meth:`record`); it completes the intent. ``usage_unknown``: a billed reply
   whose counts are not known (no usage block, or counts that cannot be true): zeros,
   unpriced, the reason in ``price_note``;
3. ``lost_reply``: an intent whose worker died (:meth:`reconcile`): input tokens
   estimated from the prompt size, output unknown, unpriced.

One upsert does all of it: a new key is inserted; an existing row is overwritten only by
real usage over an intent or a lost reply, or by ``step_failed`` over ``ok`` (the
attempt failed after the call). An intent never overwrites anything, and a row never
goes back from real usage to an estimate.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, func, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ..pricing import Pricer
from ..usage import LLMUsage
from ._batch import InsertBatcher
from ._config import LedgerNotMigrated, LedgerUnavailable
from ._core import StoreCore
from ._pg_insert import usage_insert
from ._records import (
    LOST_RUN_ENDED,
    LOST_WORKER_STOPPED,
    CallIntent,
    PruneResult,
    ReconcileResult,
    RepriceResult,
    UsageRecord,
)
from ._rows import (
    PROVISIONAL,
    REPLACE_WHEN,
    ROWS_PER_STATEMENT,
    debug_json,
    intent_row,
    price_columns,
    quote_usage,
    require_aware,
    usage_rows,
)
from ._schema import DebugLog, StepStat

__all__ = ["LedgerWriter"]

log = logging.getLogger("baton_temporal.ledger")

_T = cast(Table, StepStat.__table__)
_D = cast(Table, DebugLog.__table__)


class LedgerWriter(StoreCore):
    """The write half of :class:`~baton_temporal.ledger.LedgerStore`."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        pricer: Pricer | None = None,
        auto_migrate: bool = False,
        connect_timeout: float = 10.0,
    ) -> None:
        super().__init__(
            engine, pricer=pricer, auto_migrate=auto_migrate, connect_timeout=connect_timeout
        )
        # Concurrent writes share one statement (group commit); see _batch.py.
        self._batcher = InsertBatcher(
            self._insert, is_outage=lambda e: isinstance(e, LedgerUnavailable | LedgerNotMigrated)
        )
        columns = [c.name for c in _T.columns if not c.primary_key]
        self._chunk = ROWS_PER_STATEMENT
        # The hot path's statement, built once (building it costs more than running it),
        # and a connection kept for it: a pool checkout with its liveness ping cost ~0.7 ms
        # of worker CPU per write, more than the INSERT itself.
        insert = pg_insert if engine.dialect.name == "postgresql" else sqlite_insert
        stmt = insert(_T)
        self._insert_stmt = stmt.on_conflict_do_update(
            index_elements=[_T.c.call_key],
            set_={c: stmt.excluded[c] for c in columns if c != "call_key"},
            where=text(REPLACE_WHEN),
        ).returning(_T.c.call_key)
        # On PostgreSQL the statement goes to psycopg itself (see _pg_insert.py).
        self._pg_insert = usage_insert() if engine.dialect.name == "postgresql" else None
        self._writer: AsyncConnection | None = None
        self._writer_driver: Any = None
        self._writer_cursor_type: Any = None
        self._writer_loop: asyncio.AbstractEventLoop | None = None

    # -- usage rows --------------------------------------------------------------------

    async def record(
        self, rows: UsageRecord | Mapping[str, Any] | Iterable[UsageRecord | Mapping[str, Any]]
    ) -> int:
        """Write usage records, each priced at its call's time; return the rows written.

        Idempotent: a record whose call_key is already stored is skipped (it replaces
        only the call's intent or lost-reply estimate), so the same records may be written
        again after any failure. Mappings are validated as :class:`UsageRecord` (e.g.
        records that came back over the wire as JSON). Any number of records: they are
        written in statements below the drivers' parameter limits.
        Raises :class:`LedgerUnavailable` when the database cannot be reached, and
        :class:`LedgerWriteError` when it refuses the rows.
        """
        values = usage_rows(rows, self._pricer)  # the same rows as the worker's writer
        if not values:
            return 0
        return await self._batcher.submit_all(values, per_statement=self._chunk)

    # -- call intents ------------------------------------------------------------------

    async def begin_call(self, intent: CallIntent) -> bool:
        """Write a call's intent before its request leaves; True if it was new.

        If the worker dies before the reply is recorded, the intent is what the ledger
        keeps (see :meth:`reconcile`).
        """
        row = intent_row(intent)
        return await self._batcher.submit([row]) == 1

    async def cancel_call(self, call_key: str) -> bool:
        """Remove a call's intent: the request got no billed reply (an error status, a
        connection never made). Only an intent or a lost-reply estimate is removed (a
        removal that arrives late, after the ledger was down, may find the intent taken
        for a lost reply meanwhile); True if there was one."""
        return await self.cancel_calls([call_key]) == 1

    async def cancel_calls(self, call_keys: Iterable[str]) -> int:
        """:meth:`cancel_call` for many keys at once; return how many rows went."""
        keys = list(dict.fromkeys(call_keys))
        removed = 0
        for start in range(0, len(keys), self._chunk):
            stmt = delete(_T).where(
                _T.c.call_key.in_(keys[start : start + self._chunk]),
                _T.c.status.in_(PROVISIONAL),
            )
            async with self._connect(write=True, autocommit=True) as conn:
                removed += int((await conn.execute(stmt)).rowcount or 0)
        return removed

    async def reconcile(
        self,
        *,
        workflow_id: str,
        run_id: str,
        activity_id: str | None = None,
        before_attempt: int | None = None,
        call_key: str | None = None,
        reason: str = LOST_WORKER_STOPPED,
    ) -> int:
        """Turn the orphaned intents of a run (optionally of one activity's attempts
        before ``before_attempt``) into ``lost_reply`` rows; return how many.

        Called by a step's next attempt for the attempts before it, and by
        ``baton db reconcile`` for runs that ended. Input tokens stay the estimate from
        the prompt size; output is unknown (0); the row is unpriced. ``reason`` (stored
        as the row's ``price_note``) says what happened to the reply.
        """
        where = [_T.c.status == "pending", _T.c.workflow_id == workflow_id, _T.c.run_id == run_id]
        if activity_id is not None:
            where.append(_T.c.activity_id == activity_id)
        if before_attempt is not None:
            where.append(_T.c.attempt < before_attempt)
        if call_key is not None:
            where.append(_T.c.call_key == call_key)
        stmt = update(_T).where(*where).values(status="lost_reply", price_note=reason[:1000])
        async with self._connect(write=True, autocommit=True) as conn:
            return int((await conn.execute(stmt)).rowcount or 0)

    async def reconcile_ended(
        self,
        has_ended: Callable[[str, str], Awaitable[bool | None]],
        *,
        older_than: timedelta = timedelta(minutes=1),
        now: datetime | None = None,
    ) -> ReconcileResult:
        """Reconcile the intents of every run that ``has_ended(workflow_id, run_id)``.

        ``has_ended`` answers True (closed), False (still running) or None (not found:
        the answer is unknown, so the run's intents are left alone and counted in
        ``not_found``). Only intents older than ``older_than`` are looked at (a call just
        sent is not an orphan). Example::

            await store.reconcile_ended(lambda wf, run: temporal_says_closed(wf, run))
        """
        cutoff = (require_aware(now, "now") if now else datetime.now(UTC)) - older_than
        runs_stmt = (
            select(_T.c.workflow_id, _T.c.run_id)
            .where(_T.c.status == "pending", _T.c.recorded_at < cutoff)
            .distinct()
            .order_by(_T.c.workflow_id, _T.c.run_id)
        )
        async with self._connect(write=False) as conn:
            runs = [(r[0], r[1]) for r in (await conn.execute(runs_stmt)).all()]
        lost = running = missing = 0
        for workflow_id, run_id in runs:
            ended = await has_ended(workflow_id, run_id)
            if ended is None:
                missing += 1
            elif ended:
                lost += await self.reconcile(
                    workflow_id=workflow_id, run_id=run_id, reason=LOST_RUN_ENDED
                )
            else:
                running += 1
        return ReconcileResult(lost_replies=lost, still_running=running, not_found=missing)

    # -- repricing ---------------------------------------------------------------------

    async def reprice(
        self,
        *,
        since: datetime | None = None,
        unpriced_only: bool = False,
        pricer: Pricer | None = None,
        page_size: int = 1000,
    ) -> RepriceResult:
        """Price stored rows again, each at its call's time, with ``pricer`` (default: the
        store's); store cost, price model and the price version used.

        ``since`` limits it to calls made from then on; ``unpriced_only`` to rows without a
        cost (e.g. stored while a model was unknown). Rows of lost replies are skipped:
        their usage is not known. Example::

            await store.reprice(unpriced_only=True)    # after upgrading genai-prices
        """
        use = pricer or self._pricer
        when = func.coalesce(_T.c.requested_at, _T.c.recorded_at)
        where: list[Any] = [_T.c.status.in_(("ok", "step_failed"))]
        if since is not None:
            where.append(when >= require_aware(since, "since"))
        if unpriced_only:
            where.append(_T.c.cost_usd.is_(None))
        cols = [_T.c[name] for name in _REPRICE_COLUMNS]
        last_id = 0
        seen = changed = priced = 0
        version: str | None = None
        change = (
            update(_T)
            .where(_T.c.id == bindparam("row_id"))
            .values(
                cost_usd=bindparam("new_cost"),
                price_model=bindparam("new_model"),
                price_version=bindparam("new_version"),
                price_note=bindparam("new_note"),
            )
        )
        while True:
            page = select(*cols).where(*where, _T.c.id > last_id).order_by(_T.c.id).limit(page_size)
            async with self._connect(write=False) as conn:
                rows = (await conn.execute(page)).mappings().all()
            if not rows:
                break
            last_id = rows[-1]["id"]
            updates = []
            for row in rows:
                seen += 1
                quote = quote_usage(use, _usage_of(row))
                new = price_columns(quote)
                if new["cost_usd"] is not None:
                    priced += 1
                    version = new["price_version"]
                if any(new[k] != row[k] for k in new):
                    updates.append(
                        {
                            "row_id": row["id"],
                            "new_cost": new["cost_usd"],
                            "new_model": new["price_model"],
                            "new_version": new["price_version"],
                            "new_note": new["price_note"],
                        }
                    )
            if updates:
                async with self._connect(write=True) as conn:
                    await conn.execute(change, updates)
                changed += len(updates)
        return RepriceResult(
            rows=seen, changed=changed, priced=priced, unpriced=seen - priced, price_version=version
        )

    # -- the insert --------------------------------------------------------------------

    async def _insert(self, values: list[dict[str, Any]]) -> set[str]:
        """Upsert rows in statements of at most ``self._chunk`` rows; return the call keys
        that were written (new, or replacing an intent / estimate / ok).

        ON CONFLICT is atomic in the database, so concurrent deliveries of the same record
        cannot both insert (a SELECT-then-INSERT could). Autocommit: each statement is
        atomic and every row is idempotent, so BEGIN/COMMIT would only add round trips.
        """
        written: set[str] = set()
        for start in range(0, len(values), self._chunk):
            written |= await self._insert_chunk(values[start : start + self._chunk])
        return written

    async def _insert_chunk(self, values: list[dict[str, Any]]) -> set[str]:
        await self._ensure_schema()
        reused = self._writer is not None
        try:
            return await self._insert_once(values)
        except LedgerUnavailable as err:
            if not (reused and self._was_dropped(err.__cause__)):
                raise
        # The kept connection was one the database had dropped (a restart): once more, on
        # a fresh one, which the pool checks before handing it out.
        return await self._insert_once(values)

    async def _insert_once(self, values: list[dict[str, Any]]) -> set[str]:
        try:
            async with self._guard():
                conn = await self._writer_connection()
                # Bounded: every queued write waits for this one.
                if self._pg_insert is not None:
                    cursor = self._writer_cursor_type(self._writer_driver)
                    await asyncio.wait_for(
                        cursor.execute(
                            self._pg_insert.sql(len(values)), self._pg_insert.params(values)
                        ),
                        self._connect_timeout,
                    )
                    return {row[0] for row in await cursor.fetchall()}
                result = await asyncio.wait_for(
                    conn.execute(self._insert_stmt, values), self._connect_timeout
                )
                return {row[0] for row in result.all()}
        except asyncio.CancelledError:
            # Cut off mid-statement (the loop is closing): never reuse that connection.
            self._writer = self._writer_driver = None
            raise
        except Exception:
            await self._drop_writer(broken=True)
            raise

    async def _writer_connection(self) -> AsyncConnection:
        loop = asyncio.get_running_loop()
        if self._writer is None or self._writer_loop is not loop:
            # A connection opened on another event loop cannot be used (or closed) here.
            self._writer = self._writer_driver = None
            conn = await self._engine.connect()
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            if self._pg_insert is not None:
                from psycopg import AsyncRawCursor  # the driver of postgresql+psycopg URLs

                self._writer_cursor_type = AsyncRawCursor
                self._writer_driver = (await conn.get_raw_connection()).driver_connection
            self._writer, self._writer_loop = conn, loop
        return self._writer

    async def _drop_writer(self, *, broken: bool) -> None:
        conn, self._writer, self._writer_driver = self._writer, None, None
        if conn is None or self._writer_loop is not asyncio.get_running_loop():
            return
        try:
            # A broken connection is discarded, not handed back to the pool.
            await (conn.invalidate() if broken else conn.close())
        except Exception:
            log.debug("closing the ledger's writer connection failed", exc_info=True)

    # -- debug logs and pruning --------------------------------------------------------

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
    ) -> int:
        """Save the full request and response of one LLM call; return the row id.

        ``request`` / ``response`` must be JSON-serialisable (dicts of the provider's
        payloads). Kept apart from results and stats; pruned like them.
        """
        row = {
            "workflow_id": workflow_id,
            "run_id": run_id,
            "step": step,
            "attempt": attempt,
            "call_id": call_id,
            "model": model,
            "request": debug_json(request),
            "response": debug_json(response),
            "created_at": require_aware(created_at, "created_at")
            if created_at is not None
            else datetime.now(UTC),
        }
        async with self._connect(write=True) as conn:
            result = await conn.execute(_D.insert().returning(_D.c.id), row)
            return int(result.scalar_one())

    async def prune(
        self,
        older_than: timedelta,
        *,
        now: datetime | None = None,
        batch_size: int = 5000,
    ) -> PruneResult:
        """Delete stats and debug rows recorded more than ``older_than`` ago.

        Deletes in batches of ``batch_size`` rows, each its own transaction, so pruning
        a large ledger never holds long locks against concurrent writers.

        Example::

            await store.prune(timedelta(days=90))   # PruneResult(stats_rows=..., ...)
        """
        if older_than < timedelta(0):
            raise ValueError(f"older_than must not be negative, got {older_than}")
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        cutoff = (require_aware(now, "now") if now else datetime.now(UTC)) - older_than
        stats = await self._delete_before(_T, _T.c.recorded_at, cutoff, batch_size)
        debug = await self._delete_before(_D, _D.c.created_at, cutoff, batch_size)
        return PruneResult(stats_rows=stats, debug_rows=debug)

    async def _delete_before(self, table: Any, column: Any, cutoff: datetime, batch: int) -> int:
        total = 0
        while True:
            ids = select(table.c.id).where(column < cutoff).limit(batch)
            async with self._connect(write=True) as conn:
                deleted = (await conn.execute(delete(table).where(table.c.id.in_(ids)))).rowcount
            total += deleted
            if deleted < batch:
                return total


_REPRICE_COLUMNS = (
    "id",
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
    "recorded_at",
    "cost_usd",
    "price_model",
    "price_version",
    "price_note",
)


def _usage_of(row: Any) -> LLMUsage:
    """The usage a stored row describes, at its call's time (for repricing)."""
    return LLMUsage.model_construct(
        model=row["model"],
        provider=row["provider"],
        input_tokens=row["input_tokens"],
        output_tokens=row["output_tokens"],
        cache_read_tokens=row["cache_read_tokens"],
        cache_write_tokens=row["cache_write_tokens"],
        reasoning_tokens=row["reasoning_tokens"],
        cache_write_1h_tokens=row["cache_write_1h_tokens"],
        input_audio_tokens=row["input_audio_tokens"],
        output_audio_tokens=row["output_audio_tokens"],
        web_search_requests=row["web_search_requests"],
        service_tier=row["service_tier"],
        speed=row["speed"],
        requested_at=row["requested_at"] or row["recorded_at"],
        latency_ms=None,
        call_id=None,
    )
