"""The worker's ledger writer for PostgreSQL: psycopg only, no SQLAlchemy.

A worker only writes usage (intents, usage rows, removals, reconciliation, debug logs)
and checks the schema's revision. Through :class:`~baton_temporal.ledger.LedgerStore`
that loaded SQLAlchemy and its ORM (~17 MiB of RSS) and the store's modules (~4.5 MiB)
into every worker process, though the hot write already went straight to psycopg. This
writer makes the same writes with the same SQL effects and the same errors:

* rows come from ``_rows`` (the store's own helpers), the upsert from ``_pg_insert``
  (the store's statement), the group commit from ``_batch``;
* one kept connection per event loop for the usage upsert, reconnected once when the
  database dropped it (a restart); another for the rare writes (removals,
  reconciliation, debug logs, the schema check), checked before each use as the
  store's pool does;
* every statement is bounded by ``connect_timeout``: a database that stops answering
  fails the write as :class:`LedgerUnavailable` instead of holding the queue.

Schema changes are not its business: ``migrate()`` hands over to a ``LedgerStore``.

Example::

    writer = PgUsageWriter("postgresql://baton@db/baton")
    await writer.check_schema()        # LedgerNotMigrated: run `baton db upgrade`
    await writer.record(records)
    await writer.close()
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import AsyncRawCursor
from psycopg.conninfo import conninfo_to_dict
from psycopg.types.json import Jsonb

from ..pricing import Pricer, pricer_from_env
from ._batch import InsertBatcher
from ._errors import (
    PG_TRANSIENT,
    STATEMENT_FAULTS,
    LedgerConfigError,
    LedgerError,
    LedgerNotMigrated,
    LedgerUnavailable,
    not_migrated,
    refused,
    unavailable,
)
from ._pg_insert import usage_insert
from ._records import LOST_WORKER_STOPPED, CallIntent, UsageRecord
from ._revisions import VERSION_TABLE, check_revisions
from ._rows import (
    DEBUG_LOG_TABLE,
    PROVISIONAL,
    ROWS_PER_STATEMENT,
    STEP_STAT_TABLE,
    debug_json,
    intent_row,
    require_aware,
    usage_rows,
    utc_value,
)
from ._urls import postgres_target

__all__ = ["PgUsageWriter"]

log = logging.getLogger("baton_temporal.ledger")

# The statements of the rare writes, all on the ledger's own (lower-case) names.
_CANCEL = (
    f"DELETE FROM {STEP_STAT_TABLE} WHERE call_key = ANY(%s) "
    f"AND status IN ({', '.join(repr(s) for s in PROVISIONAL)})"
)
_DEBUG = (
    f"INSERT INTO {DEBUG_LOG_TABLE} (workflow_id, run_id, step, attempt, call_id, model, "
    "request, response, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id"
)


# What the writer does to each table (upsert with RETURNING, cancel, reconcile; debug
# logs with RETURNING id).
_WRITES = (
    (STEP_STAT_TABLE, ("SELECT", "INSERT", "UPDATE", "DELETE")),
    (DEBUG_LOG_TABLE, ("SELECT", "INSERT")),
)


class _Link:
    """One connection of the writer, usable only on the event loop it was opened on."""

    __slots__ = ("conn", "lock", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.conn: psycopg.AsyncConnection[Any] | None = None
        # Statements take turns on the connection; so does opening it.
        self.lock = asyncio.Lock()


class PgUsageWriter:
    """A worker's PostgreSQL ledger: the writes of ``LedgerStore`` without SQLAlchemy.

    Satisfies :class:`~baton_temporal.ledger._sink.UsageSink`. Nothing connects until
    the first use. ``BatonPlugin(ledger="postgresql://...")`` uses it; read the ledger
    with :class:`~baton_temporal.ledger.LedgerStore`.

    Example::

        writer = PgUsageWriter("postgresql://baton@db/baton", connect_timeout=5)
        assert await writer.record(records) == len(records)
    """

    def __init__(
        self, url: str, *, pricer: Pricer | None = None, connect_timeout: float = 10.0
    ) -> None:
        self._conninfo, self.url = postgres_target(url)
        # The URL as given, for the store that migrates (the conninfo is libpq's form).
        self._source = url.strip()
        # As the store: the URL's own connect_timeout wins over ours.
        self._own_timeout = "connect_timeout" not in conninfo_to_dict(self._conninfo)
        self._connect_timeout = connect_timeout
        # Resolved now, as the store does: a broken BATON_PRICES_FILE stops the worker
        # at start-up, not a step after its LLM call was paid.
        self._pricer: Pricer = pricer if pricer is not None else pricer_from_env()
        self._insert_sql = usage_insert()
        self._chunk = ROWS_PER_STATEMENT
        # Concurrent writes share one statement (group commit); see _batch.py.
        self._batcher = InsertBatcher(
            self._insert, is_outage=lambda e: isinstance(e, LedgerUnavailable | LedgerNotMigrated)
        )
        self._writer: _Link | None = None
        self._side: _Link | None = None
        self._schema_ok = False

    @property
    def pricer(self) -> Pricer:
        """The pricer used by :meth:`record` (default: ``pricer_from_env()``)."""
        return self._pricer

    @property
    def dialect(self) -> str:
        """Always ``"postgresql"``."""
        return "postgresql"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"

    # -- usage rows and intents --------------------------------------------------------

    async def record(
        self, rows: UsageRecord | Mapping[str, Any] | Iterable[UsageRecord | Mapping[str, Any]]
    ) -> int:
        """Write usage records, each priced at its call's time; return the rows written.

        Same as ``LedgerStore.record``: idempotent on the call key (replacing only the
        call's intent or lost-reply estimate, or ``ok`` by ``step_failed``).
        """
        values = usage_rows(rows, self._pricer)
        if not values:
            return 0
        return await self._batcher.submit_all(values, per_statement=self._chunk)

    async def begin_call(self, intent: CallIntent) -> bool:
        """Write a call's intent before its request leaves; True if it was new."""
        return await self._batcher.submit([intent_row(intent)]) == 1

    async def _insert(self, values: list[dict[str, Any]]) -> set[str]:
        written: set[str] = set()
        for start in range(0, len(values), self._chunk):
            written |= await self._insert_chunk(values[start : start + self._chunk])
        return written

    async def _insert_chunk(self, values: list[dict[str, Any]]) -> set[str]:
        await self._ensure_schema()
        sql, params = self._insert_sql.sql(len(values)), self._insert_sql.params(values)

        async def upsert(conn: psycopg.AsyncConnection[Any]) -> set[str]:
            cursor = AsyncRawCursor(conn)
            await cursor.execute(sql, params)
            return {row[0] for row in await cursor.fetchall()}

        # No ping first (it would double the round trips of the hot path): a connection
        # found dropped is replaced and the upsert, idempotent, sent once more.
        return await self._run(self._writer_link(), upsert, ping=False)

    # -- the rare writes -----------------------------------------------------------------

    async def cancel_call(self, call_key: str) -> bool:
        """Remove a call's intent (or lost-reply estimate); True if there was one."""
        return await self.cancel_calls([call_key]) == 1

    async def cancel_calls(self, call_keys: Iterable[str]) -> int:
        """:meth:`cancel_call` for many keys at once; return how many rows went."""
        keys = list(dict.fromkeys(call_keys))
        removed = 0
        for start in range(0, len(keys), self._chunk):
            removed += await self._execute(_CANCEL, (keys[start : start + self._chunk],))
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
        """Turn a run's orphaned intents into ``lost_reply`` rows; return how many
        (same as ``LedgerStore.reconcile``)."""
        where = ["status = 'pending'", "workflow_id = %s", "run_id = %s"]
        params: list[Any] = [workflow_id, run_id]
        for clause, value in (
            ("activity_id = %s", activity_id),
            ("attempt < %s", before_attempt),
            ("call_key = %s", call_key),
        ):
            if value is not None:
                where.append(clause)
                params.append(value)
        sql = (
            f"UPDATE {STEP_STAT_TABLE} SET status = 'lost_reply', price_note = %s "
            f"WHERE {' AND '.join(where)}"
        )
        return await self._execute(sql, (reason[:1000], *params))

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
        """Save the full request and response of one LLM call; return the row id."""
        when = require_aware(created_at, "created_at") if created_at else datetime.now(UTC)
        params = (
            workflow_id,
            run_id,
            step,
            attempt,
            call_id,
            model,
            Jsonb(debug_json(request)),
            Jsonb(debug_json(response)),
            utc_value(when),
        )
        await self._ensure_schema()

        async def insert(conn: psycopg.AsyncConnection[Any]) -> int:
            cursor = await conn.execute(_DEBUG, params)
            row = await cursor.fetchone()
            assert row is not None  # RETURNING gives one row
            return int(row[0])

        return await self._run(self._side_link(), insert, ping=True)

    async def _execute(self, sql: str, params: tuple[Any, ...]) -> int:
        await self._ensure_schema()

        async def run(conn: psycopg.AsyncConnection[Any]) -> int:
            return int((await conn.execute(sql, params)).rowcount or 0)

        return await self._run(self._side_link(), run, ping=True)

    # -- schema ------------------------------------------------------------------------

    async def check_schema(self) -> None:
        """Raise :class:`LedgerNotMigrated` unless the tables are at the newest revision."""

        async def read(conn: psycopg.AsyncConnection[Any]) -> frozenset[str]:
            found = await (
                await conn.execute("SELECT to_regclass(%s)", (VERSION_TABLE,))
            ).fetchone()
            if found is None or found[0] is None:
                return frozenset()
            rows = await (await conn.execute(f"SELECT version_num FROM {VERSION_TABLE}")).fetchall()
            return frozenset(str(r[0]) for r in rows)

        current = await self._run(self._side_link(), read, ping=True)
        if check_revisions(self.url, current):
            await self._check_privileges()

    async def _check_privileges(self) -> None:
        """Refuse a role that may read the ledger but not write it: every paid call's row
        would be refused for good (LedgerWriteError) while the schema check passed."""

        async def missing(conn: psycopg.AsyncConnection[Any]) -> tuple[str, list[str]]:
            lacks: list[str] = []
            for table, privileges in _WRITES:
                for privilege in privileges:
                    row = await (
                        await conn.execute("SELECT has_table_privilege(%s, %s)", (table, privilege))
                    ).fetchone()
                    if row is not None and not row[0]:
                        lacks.append(f"{privilege} on {table}")
                row = await (
                    await conn.execute(
                        "SELECT s, has_sequence_privilege(s, 'USAGE') "
                        "FROM pg_get_serial_sequence(%s, 'id') AS s WHERE s IS NOT NULL",
                        (table,),
                    )
                ).fetchone()
                if row is not None and not row[1]:
                    lacks.append(f"USAGE on sequence {row[0]}")
            user = await (await conn.execute("SELECT current_user")).fetchone()
            return (str(user[0]) if user else "?"), lacks

        user, lacks = await self._run(self._side_link(), missing, ping=True)
        if lacks:
            raise LedgerConfigError(
                f"the ledger database {self.url}: role {user!r} may not write the ledger "
                f"(it lacks {', '.join(lacks)}); grant them, e.g. GRANT SELECT, INSERT, "
                f'UPDATE, DELETE ON {STEP_STAT_TABLE}, {DEBUG_LOG_TABLE} TO "{user}"; '
                f'GRANT USAGE ON ALL SEQUENCES IN SCHEMA <schema> TO "{user}"'
            )

    async def _ensure_schema(self) -> None:
        if not self._schema_ok:
            await self.check_schema()
            self._schema_ok = True

    async def migrate(self) -> None:
        """Create or upgrade the ledger tables: done by a ``LedgerStore`` (Alembic and
        SQLAlchemy are loaded for it, and only for it)."""
        from ._store import LedgerStore

        store = LedgerStore.from_url(
            self._source, pricer=self._pricer, connect_timeout=self._connect_timeout
        )
        try:
            await store.migrate()
        finally:
            await store.close()
        self._schema_ok = True

    async def close(self) -> None:
        """Close the writer's connections (those of the running event loop; the others
        are dropped)."""
        for link in (self._writer, self._side):
            if link is not None:
                await self._drop(link, broken=False)
        self._writer = self._side = None

    # -- connections and errors --------------------------------------------------------

    def _writer_link(self) -> _Link:
        loop = asyncio.get_running_loop()
        if self._writer is None or self._writer.loop is not loop:
            # A connection opened on another event loop cannot be used (or closed) here.
            if self._writer is not None:
                _abandon(self._writer)
            self._writer = _Link(loop)
        return self._writer

    def _side_link(self) -> _Link:
        loop = asyncio.get_running_loop()
        if self._side is None or self._side.loop is not loop:
            if self._side is not None:
                _abandon(self._side)
            self._side = _Link(loop)
        return self._side

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        timeout = max(1, math.ceil(self._connect_timeout))
        options: dict[str, Any] = {"autocommit": True}
        if self._own_timeout:
            options["connect_timeout"] = timeout
        # psycopg bounds the connection attempt itself; the outer bound is for a server
        # that accepts the socket and never answers the start-up.
        return await asyncio.wait_for(
            psycopg.AsyncConnection.connect(self._conninfo, **options), timeout + 1
        )

    async def _run(self, link: _Link, work: Any, *, ping: bool) -> Any:
        """``work(conn)`` on the link's connection, bounded by ``connect_timeout``;
        database errors become the ledger's. A kept connection the database dropped is
        replaced: found by a ping first (``ping``), or by the failure, once."""
        async with link.lock:
            reused = link.conn is not None and not link.conn.closed
            if reused and ping:
                try:
                    await asyncio.wait_for(
                        link.conn.execute("SELECT 1"),  # type: ignore[union-attr]
                        self._connect_timeout,
                    )
                except asyncio.CancelledError:
                    _abandon(link)
                    raise
                except Exception:
                    await self._drop(link, broken=True)
                    reused = False
            try:
                return await self._once(link, work)
            except LedgerUnavailable as err:
                if not (reused and not ping and _was_dropped(err.__cause__)):
                    raise
            # The kept connection was one the database had dropped (a restart): once
            # more, on a fresh one.
            return await self._once(link, work)

    async def _once(self, link: _Link, work: Any) -> Any:
        try:
            if link.conn is None or link.conn.closed:
                link.conn = None
                link.conn = await self._connect()
            # Bounded: every queued write waits for this one.
            return await asyncio.wait_for(work(link.conn), self._connect_timeout)
        except asyncio.CancelledError:
            # Cut off mid-statement: never reuse that connection.
            _abandon(link)
            raise
        except Exception as err:
            await self._drop(link, broken=True)
            translated = self._translate(err)
            if translated is None:
                raise
            raise translated from err

    async def _drop(self, link: _Link, *, broken: bool) -> None:
        conn, link.conn = link.conn, None
        if conn is None:
            return
        if broken or link.loop is not asyncio.get_running_loop():
            _finish(conn)
            return
        try:
            await conn.close()
        except Exception:
            log.debug("closing the ledger's connection failed", exc_info=True)

    def _translate(self, err: BaseException) -> LedgerError | None:
        """The ledger error a failure means (the store's rule, see _core), if any."""
        if isinstance(err, LedgerError):
            return None
        text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        sqlstate = getattr(err, "sqlstate", None)
        if sqlstate in ("42P01", "42703"):
            return not_migrated(self.url, text)
        if _unreachable(err, text):
            return unavailable(self.url, text)
        if isinstance(err, psycopg.Error):
            return refused(self.url, text)
        return None


def _unreachable(err: BaseException, text: str) -> bool:
    if any(s in text.lower() for s in STATEMENT_FAULTS):
        return False
    if isinstance(err, OSError | TimeoutError):
        return True
    sqlstate = getattr(err, "sqlstate", None)
    if sqlstate is not None:
        return str(sqlstate).startswith("08") or sqlstate in PG_TRANSIENT
    # psycopg's errors without a SQLSTATE come from the connection, not the server.
    return isinstance(err, psycopg.OperationalError | psycopg.InterfaceError)


def _was_dropped(err: BaseException | None) -> bool:
    """Whether a failure says the connection was gone, not that the statement failed."""
    if err is None or isinstance(err, TimeoutError):
        return False
    if any(s in str(err).lower() for s in STATEMENT_FAULTS):
        return False
    sqlstate = getattr(err, "sqlstate", None)
    if sqlstate is not None:
        # 57P01-57P03: the server was shutting down when the connection was last used.
        return str(sqlstate).startswith("08") or sqlstate in ("57P01", "57P02", "57P03")
    return isinstance(err, psycopg.OperationalError | psycopg.InterfaceError)


def _finish(conn: psycopg.AsyncConnection[Any]) -> None:
    # Synchronous and loop-free: closes the socket at once (psycopg then sees the
    # connection closed, and neither warns nor tries again).
    try:
        conn.pgconn.finish()
    except Exception:
        log.debug("closing the ledger's connection failed", exc_info=True)


def _abandon(link: _Link) -> None:
    conn, link.conn = link.conn, None
    if conn is not None:
        _finish(conn)
