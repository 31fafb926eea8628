"""The usage ledger store: record LLM usage per call attempt, query it, prune it.

One async SQLAlchemy engine over PostgreSQL (``postgresql+psycopg``) in production or an
embedded SQLite file (``sqlite+aiosqlite``) as the zero-setup default. Every write is
idempotent (``INSERT ... ON CONFLICT (call_key) DO NOTHING``), so a record re-delivered
after a timeout or a worker crash never adds a second row, and a caller may retry a
failed write blindly.

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

import asyncio
import hashlib
import json
import logging
import math
import os
import threading
import time
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import cache
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self, cast

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from sqlalchemy import Connection, Table, case, delete, distinct, event, func, select
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from ..pricing import PriceQuote, Pricer, pricer_from_env
from ..usage import LLMUsage
from ._batch import InsertBatcher
from ._pg_insert import PgInsert
from ._schema import VERSION_TABLE, DebugLog, StepStat, quantize_cost

__all__ = [
    "DEFAULT_SQLITE_PATH",
    "LEDGER_URL_ENV",
    "DebugLogEntry",
    "LedgerConfigError",
    "LedgerError",
    "LedgerNotMigrated",
    "LedgerStore",
    "LedgerUnavailable",
    "ModelCost",
    "PruneResult",
    "StepStats",
    "UsageRecord",
    "WorkflowTotals",
    "alembic_config",
    "default_ledger_url",
    "safe_url",
    "to_async_url",
    "to_sync_url",
]

log = logging.getLogger("baton_temporal.ledger")

LEDGER_URL_ENV = "BATON_LEDGER_URL"
DEFAULT_SQLITE_PATH = Path(".baton") / "ledger.sqlite3"
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

_FIX_MIGRATE = "run `baton db upgrade` (or `await store.migrate()`) against it"

# ----------------------------------------------------------------------------- errors


class LedgerError(Exception):
    """Base class of the ledger's own errors."""


class LedgerConfigError(LedgerError, ValueError):
    """The ledger URL or settings are invalid; no retry can fix it."""


class LedgerUnavailable(LedgerError):
    """The ledger database cannot be reached right now (down, restarting, locked).

    Retryable: the write is idempotent, so the same records can be sent again later.
    """


class LedgerNotMigrated(LedgerError):
    """The ledger database exists but its tables are missing or out of date."""


# -------------------------------------------------------------------------------- URLs


def default_ledger_url(environ: Mapping[str, str] | None = None) -> str:
    """``$BATON_LEDGER_URL``, else the embedded SQLite file ``./.baton/ledger.sqlite3``.

    The relative path is resolved now, against the current directory, so a later
    ``chdir`` does not move the ledger.
    """
    env = os.environ if environ is None else environ
    url = env.get(LEDGER_URL_ENV, "").strip()
    if url:
        return url
    return f"sqlite+aiosqlite:///{DEFAULT_SQLITE_PATH.resolve()}"


def _parse(url: str | URL) -> URL:
    if isinstance(url, URL):
        return url
    try:
        return make_url(url)
    except sa_exc.ArgumentError:
        raise LedgerConfigError(
            f"invalid ledger URL {url!r}; expected e.g. postgresql://user:pass@host/db "
            "or sqlite:///path/to/ledger.sqlite3"
        ) from None


_PG_NAMES = {"postgresql", "postgres", "postgresql+psycopg", "postgresql+psycopg2"}
_SQLITE_NAMES = {"sqlite", "sqlite+pysqlite", "sqlite+aiosqlite"}


def to_async_url(url: str | URL) -> URL:
    """The URL with the async driver the store uses.

    ``postgresql://`` / ``postgres://`` / ``postgresql+psycopg2://`` become
    ``postgresql+psycopg://``; ``sqlite:///`` becomes ``sqlite+aiosqlite:///``.
    """
    parsed = _parse(url)
    name = parsed.drivername
    if name in _PG_NAMES:
        return parsed.set(drivername="postgresql+psycopg")
    if name == "postgresql+asyncpg":
        return parsed  # works too (ON CONFLICT is dialect-level), if installed
    if name in _SQLITE_NAMES:
        return parsed.set(drivername="sqlite+aiosqlite")
    raise LedgerConfigError(
        f"unsupported ledger database {safe_url(parsed)!r}: the ledger runs on PostgreSQL "
        "(postgresql://user:pass@host/db) or SQLite (sqlite:///path/to/ledger.sqlite3)"
    )


def to_sync_url(url: str | URL) -> URL:
    """The URL with a synchronous driver (for Alembic's own command line)."""
    parsed = to_async_url(url)
    if parsed.drivername.startswith("sqlite"):
        return parsed.set(drivername="sqlite")
    return parsed.set(drivername="postgresql+psycopg")  # psycopg 3 is sync and async


def safe_url(url: str | URL) -> str:
    """The URL as text with the password hidden, for messages and logs."""
    try:
        return _parse(url).render_as_string(hide_password=True)
    except LedgerConfigError:
        return "<invalid URL>"


# --------------------------------------------------------------------------- migrations


def alembic_config(url: str | URL | None = None) -> Any:
    """An ``alembic.config.Config`` for the ledger migrations (no ``alembic.ini`` needed).

    Example::

        from alembic import command
        command.upgrade(alembic_config("postgresql://baton@db/baton"), "head")
    """
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        # ConfigParser interpolation: a '%' in a password must be doubled.
        rendered = to_sync_url(url).render_as_string(hide_password=False)
        cfg.set_main_option("sqlalchemy.url", rendered.replace("%", "%%"))
    return cfg


@cache
def _head_revisions() -> frozenset[str]:
    from alembic.script import ScriptDirectory

    return frozenset(ScriptDirectory(str(MIGRATIONS_DIR)).get_heads())


@cache
def _known_revisions() -> frozenset[str]:
    from alembic.script import ScriptDirectory

    return frozenset(r.revision for r in ScriptDirectory(str(MIGRATIONS_DIR)).walk_revisions())


def _current_revisions(conn: Connection) -> frozenset[str]:
    from alembic.runtime.migration import MigrationContext

    ctx = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
    return frozenset(ctx.get_current_heads())


def _upgrade(conn: Connection) -> None:
    from alembic import command

    cfg = alembic_config()
    cfg.attributes["connection"] = conn
    command.upgrade(cfg, "head")


# Alembic's `alembic.context` is a process-wide proxy: two upgrades running at once in
# one process (two stores, or two event loops) would overwrite each other's context.
# Other processes are kept apart by the database (advisory lock / BEGIN IMMEDIATE).
_MIGRATE_LOCK = threading.Lock()


def _migrate_sync(url: URL, connect_timeout: float) -> None:
    """Upgrade to head over a synchronous connection (run in a worker thread)."""
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    sync_url = to_sync_url(url)
    if sync_url.get_backend_name() == "sqlite":
        engine = create_engine(
            sync_url, poolclass=NullPool, connect_args={"timeout": connect_timeout}
        )

        @event.listens_for(engine, "connect")
        def _no_driver_transactions(dbapi_conn: Any, _record: Any) -> None:
            # Let SQLAlchemy emit BEGIN (below): the driver's own control would run each
            # CREATE TABLE outside any transaction.
            dbapi_conn.isolation_level = None
            _sqlite_on_connect(dbapi_conn, _record)

        @event.listens_for(engine, "begin")
        def _begin_immediate(conn: Connection) -> None:
            # Take SQLite's write lock before Alembic reads the current revision, so a
            # second process migrating at the same time waits, then finds nothing to do.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    else:
        connect_args = (
            {}
            if "connect_timeout" in sync_url.query
            else {"connect_timeout": max(1, math.ceil(connect_timeout))}
        )
        engine = create_engine(sync_url, poolclass=NullPool, connect_args=connect_args)
    try:
        with _MIGRATE_LOCK, engine.begin() as conn:
            _upgrade(conn)
    finally:
        engine.dispose()


# ------------------------------------------------------------------------------ records


class UsageRecord(BaseModel):
    """One LLM call of one step attempt, ready to be written to the ledger.

    Frozen and JSON-serialisable (``model_dump(mode="json")`` / ``model_validate``), so
    it can cross Temporal's wire as an activity argument and be written later, by
    another process, with the same idempotency key.

    Example::

        records = UsageRecord.for_attempt(
            usages, workflow_id=info.workflow_id, run_id=info.workflow_run_id,
            workflow_name=info.workflow_type, step="summarize",
            activity_id=info.activity_id, attempt=info.attempt,
        )
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    workflow_id: str = Field(min_length=1)
    run_id: str = Field(min_length=1)
    workflow_name: str = ""
    step: str = Field(min_length=1)
    activity_id: str = Field(min_length=1)
    attempt: int = Field(ge=1)
    # Position of this call in the attempt's list of usages: the call's identity when
    # the usage has no call_id of its own.
    call_index: int = Field(default=0, ge=0)
    usage: LLMUsage
    # "step_failed": the attempt raised after the call was made; the call still cost money.
    status: Literal["ok", "step_failed"] = "ok"
    # Set when the record is made, not when it is written: a record retried an hour
    # later (ledger outage) keeps the time of the call.
    recorded_at: AwareDatetime = Field(default_factory=lambda: datetime.now(UTC))

    @property
    def call_key(self) -> str:
        """The idempotency key: workflow, run, activity, attempt and call id (or index)."""
        call = (
            ["id", self.usage.call_id]
            if self.usage.call_id is not None
            else [
                "index",
                self.call_index,
            ]
        )
        parts = [self.workflow_id, self.run_id, self.activity_id, self.attempt, *call]
        # JSON keeps the parts apart (no separator can be faked by an id containing it).
        return hashlib.sha256(json.dumps(parts).encode()).hexdigest()

    @classmethod
    def for_attempt(
        cls,
        usages: Iterable[LLMUsage],
        *,
        workflow_id: str,
        run_id: str,
        workflow_name: str,
        step: str,
        activity_id: str,
        attempt: int,
        status: Literal["ok", "step_failed"] = "ok",
        recorded_at: datetime | None = None,
    ) -> list[UsageRecord]:
        """Records of all LLM calls of one step attempt, numbered in order."""
        at = recorded_at or datetime.now(UTC)
        return [
            cls(
                workflow_id=workflow_id,
                run_id=run_id,
                workflow_name=workflow_name,
                step=step,
                activity_id=activity_id,
                attempt=attempt,
                call_index=i,
                usage=usage,
                status=status,
                recorded_at=at,
            )
            for i, usage in enumerate(usages)
        ]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class WorkflowTotals(_Frozen):
    """Everything one workflow (all its runs) used. ``cost_usd`` sums the priced calls."""

    workflow_id: str
    calls: int = 0
    attempts: int = 0  # distinct step attempts that made LLM calls
    steps: int = 0  # distinct steps that made LLM calls
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: Decimal = Decimal(0)
    unpriced_calls: int = 0  # calls whose cost is unknown: not in cost_usd
    failed_calls: int = 0  # calls made by attempts that then failed


class StepStats(_Frozen):
    """Usage of one step with one model. ``cost_usd`` is None when no call was priced."""

    step: str
    model: str
    calls: int
    attempts: int
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    cost_usd: Decimal | None
    unpriced_calls: int
    failed_calls: int
    avg_latency_ms: int | None
    first_recorded_at: datetime
    last_recorded_at: datetime


class ModelCost(_Frozen):
    """Usage of one model over a time range. ``cost_usd`` is None when nothing was priced."""

    model: str
    calls: int
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    cost_usd: Decimal | None
    unpriced_calls: int


class PruneResult(_Frozen):
    """How many rows :meth:`LedgerStore.prune` deleted."""

    stats_rows: int
    debug_rows: int


class DebugLogEntry(_Frozen):
    """One saved request/response pair."""

    id: int
    workflow_id: str
    run_id: str
    step: str
    attempt: int
    call_id: str | None
    model: str | None
    request: Any
    response: Any
    created_at: datetime


# -------------------------------------------------------------------------------- store

_T = cast(Table, StepStat.__table__)
_D = cast(Table, DebugLog.__table__)


def _int(value: Any) -> int:
    # SUM(bigint) is NUMERIC on PostgreSQL (Decimal here), INTEGER on SQLite, NULL if no rows
    return 0 if value is None else int(value)


def _token_sums() -> list[Any]:
    return [
        func.coalesce(func.sum(_T.c.input_tokens), 0),
        func.coalesce(func.sum(_T.c.output_tokens), 0),
        func.coalesce(func.sum(_T.c.cache_read_tokens), 0),
        func.coalesce(func.sum(_T.c.cache_write_tokens), 0),
        func.coalesce(func.sum(_T.c.reasoning_tokens), 0),
    ]


def _tokens(row: Sequence[Any], start: int) -> dict[str, int]:
    keys = (
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cache_write_tokens",
        "reasoning_tokens",
    )
    return {k: _int(row[start + i]) for i, k in enumerate(keys)}


_UNPRICED = func.coalesce(func.sum(case((_T.c.cost_usd.is_(None), 1), else_=0)), 0)
_FAILED = func.coalesce(func.sum(case((_T.c.status == "step_failed", 1), else_=0)), 0)


def _require_aware(value: datetime, name: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, e.g. datetime(2025, 1, 1, tzinfo=UTC)")
    return value


class LedgerStore:
    """Async access to the usage ledger. Create with :meth:`from_url`; close when done.

    No global state: each store owns one engine (a connection pool), released by
    :meth:`close` or ``async with``.

    Example::

        async with LedgerStore.from_url() as store:      # $BATON_LEDGER_URL or SQLite
            print(await store.workflow_totals("wf-1"))
    """

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        pricer: Pricer | None = None,
        auto_migrate: bool = False,
        connect_timeout: float = 10.0,
    ) -> None:
        self._engine = engine
        self._connect_timeout = connect_timeout
        # Resolved now, not at the first write: a broken BATON_PRICES_FILE must stop a
        # worker at start-up (PricingError), not fail a step after its LLM call was paid.
        self._pricer: Pricer = pricer if pricer is not None else pricer_from_env()
        self._auto_migrate = auto_migrate
        self._schema_ok = False
        self.url = safe_url(engine.url)
        # Concurrent record() calls share one INSERT (group commit); see _batch.py.
        self._batcher = InsertBatcher(
            self._insert, is_outage=lambda e: isinstance(e, LedgerUnavailable | LedgerNotMigrated)
        )
        # The hot path's statement, built once (building it costs more than running it),
        # and a connection kept for it: a pool checkout with its liveness ping cost ~0.7 ms
        # of worker CPU per write, more than the INSERT itself.
        insert = pg_insert if engine.dialect.name == "postgresql" else sqlite_insert
        self._insert_stmt = (
            insert(_T)
            .on_conflict_do_nothing(index_elements=[_T.c.call_key])
            .returning(_T.c.call_key)
        )
        # On PostgreSQL the statement goes to psycopg itself (see _pg_insert.py).
        self._pg_insert = (
            PgInsert(_T, engine.dialect, key="call_key")
            if engine.dialect.name == "postgresql"
            else None
        )
        self._writer: AsyncConnection | None = None
        self._writer_driver: Any = None
        self._writer_loop: asyncio.AbstractEventLoop | None = None

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
            event.listen(engine.sync_engine, "connect", _sqlite_on_connect)
        return cls(
            engine, pricer=pricer, auto_migrate=auto_migrate, connect_timeout=connect_timeout
        )

    @property
    def engine(self) -> AsyncEngine:
        """The SQLAlchemy engine (for tests and tools; the store owns it)."""
        return self._engine

    @property
    def pricer(self) -> Pricer:
        """The pricer used by :meth:`record` (default: ``pricer_from_env()``)."""
        return self._pricer

    @property
    def dialect(self) -> str:
        """``"postgresql"`` or ``"sqlite"``."""
        return self._engine.dialect.name

    def __repr__(self) -> str:
        return f"LedgerStore({self.url!r})"

    async def close(self) -> None:
        """Release the connection pool."""
        await self._drop_writer(broken=False)
        await self._engine.dispose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- errors and connections ------------------------------------------------------

    def _translate(self, err: BaseException) -> LedgerError | None:
        """The ledger error an exception from the database layer means, if any."""
        if isinstance(err, LedgerError):
            return None
        orig = getattr(err, "orig", None) or err
        text = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
        if getattr(orig, "sqlstate", None) in ("42P01", "42703") or any(
            s in text for s in ("no such table", "no such column", "has no column named")
        ):
            return LedgerNotMigrated(
                f"the ledger tables in {self.url} are missing or out of date ({text}); "
                f"{_FIX_MIGRATE}"
            )
        unavailable = isinstance(
            err,
            sa_exc.OperationalError | sa_exc.InterfaceError | sa_exc.TimeoutError | OSError,
        ) or self._was_dropped(err)
        if unavailable:
            return LedgerUnavailable(
                f"the ledger database {self.url} is unavailable: {text}. Check that it is "
                f"running and reachable from this host, or set {LEDGER_URL_ENV} to the "
                "right database; writes are idempotent and can be retried"
            )
        return None

    @asynccontextmanager
    async def _guard(self) -> AsyncIterator[None]:
        try:
            yield
        except Exception as err:
            translated = self._translate(err)
            if translated is None:
                raise
            raise translated from err

    @asynccontextmanager
    async def _connect(
        self, *, write: bool, autocommit: bool = False
    ) -> AsyncIterator[AsyncConnection]:
        await self._ensure_schema()
        async with self._guard():
            if autocommit:
                # One statement, atomic on its own: no BEGIN/COMMIT round trips.
                async with self._engine.connect() as conn:
                    await conn.execution_options(isolation_level="AUTOCOMMIT")
                    yield conn
                return
            opener = self._engine.begin() if write else self._engine.connect()
            async with opener as conn:
                yield conn

    # -- schema ------------------------------------------------------------------------

    async def migrate(self) -> None:
        """Create or upgrade the ledger tables (Alembic, to the newest revision).

        Safe to run again, and from several processes at once on PostgreSQL (they take
        turns under an advisory lock).
        """
        async with self._guard():
            # In a thread, on a synchronous connection: Alembic is synchronous and keeps
            # process-wide state (see _MIGRATE_LOCK); the event loop stays free meanwhile.
            await asyncio.to_thread(_migrate_sync, self._engine.url, self._connect_timeout)
        self._schema_ok = True

    async def check_schema(self) -> None:
        """Raise :class:`LedgerNotMigrated` unless the tables are at the newest revision."""
        async with self._guard(), self._engine.connect() as conn:
            current = await conn.run_sync(_current_revisions)
        heads = _head_revisions()
        if current == heads:
            return
        if not current:
            raise LedgerNotMigrated(
                f"the ledger database {self.url} has no ledger tables; {_FIX_MIGRATE}"
            )
        unknown = current - _known_revisions()
        if unknown:
            # Migrated by a newer release: its changes are additive, so keep working.
            log.warning(
                "ledger database %s is at revision %s, newer than this baton-temporal knows",
                self.url,
                ", ".join(sorted(unknown)),
            )
            return
        raise LedgerNotMigrated(
            f"the ledger database {self.url} is at revision {', '.join(sorted(current))}, "
            f"this baton-temporal needs {', '.join(sorted(heads))}; {_FIX_MIGRATE}"
        )

    async def _ensure_schema(self) -> None:
        if self._schema_ok:
            return
        try:
            await self.check_schema()
        except LedgerNotMigrated:
            if not self._auto_migrate:
                raise
            await self.migrate()
        self._schema_ok = True

    # -- writes ------------------------------------------------------------------------

    @staticmethod
    def _quote(pricer: Pricer, usage: LLMUsage) -> PriceQuote | None:
        try:
            quote = pricer.cost(usage)
        except Exception:
            # A broken pricer must not lose the usage (nor block it forever with retries):
            # the row is stored unpriced, and the error is logged for someone to fix.
            log.exception("pricer %r failed for model %r; storing it unpriced", pricer, usage.model)
            return None
        if quote is not None and (not quote.cost_usd.is_finite() or quote.cost_usd < 0):
            log.error("pricer %r quoted %s for %r; storing it unpriced", pricer, quote, usage.model)
            return None
        return quote

    def _row(self, rec: UsageRecord, pricer: Pricer) -> dict[str, Any]:
        u = rec.usage
        quote = self._quote(pricer, u)
        return {
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
            "input_tokens": u.input_tokens,
            "output_tokens": u.output_tokens,
            "cache_read_tokens": u.cache_read_tokens,
            "cache_write_tokens": u.cache_write_tokens,
            "reasoning_tokens": u.reasoning_tokens,
            "latency_ms": u.latency_ms,
            "cost_usd": None if quote is None else quantize_cost(quote.cost_usd),
            "price_model": None if quote is None else quote.price_model,
            "price_version": None if quote is None else quote.price_version,
            "status": rec.status,
            "recorded_at": rec.recorded_at,
        }

    async def record(
        self, rows: UsageRecord | Mapping[str, Any] | Iterable[UsageRecord | Mapping[str, Any]]
    ) -> int:
        """Write usage records, pricing each now; return how many rows were new.

        Idempotent: a record whose call_key is already stored is skipped, so the same
        records may be written again after any failure. Mappings are validated as
        :class:`UsageRecord` (e.g. records that came back over the wire as JSON).
        Raises :class:`LedgerUnavailable` when the database cannot be reached.
        """
        if isinstance(rows, UsageRecord | Mapping):
            rows = [rows]
        records = [r if isinstance(r, UsageRecord) else UsageRecord.model_validate(r) for r in rows]
        if not records:
            return 0
        # One row per key even within a batch; the database enforces it across batches.
        values = list(
            {v["call_key"]: v for v in (self._row(r, self._pricer) for r in records)}.values()
        )
        return await self._batcher.submit(values)

    async def _insert(self, values: list[dict[str, Any]]) -> set[str]:
        """Insert rows in one statement; return the call keys that were new.

        ON CONFLICT DO NOTHING is atomic in the database, so concurrent deliveries of the
        same record cannot both insert (a SELECT-then-INSERT could). Autocommit: the
        INSERT is one statement and every row is idempotent, so BEGIN/COMMIT would only
        add round trips.
        """
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

    def _was_dropped(self, err: BaseException | None) -> bool:
        """Whether ``err`` says the connection failed, not the statement: an invalidated
        SQLAlchemy connection, or the driver's own connection errors (PostgreSQL's usage
        INSERT goes to psycopg directly)."""
        if isinstance(err, sa_exc.DBAPIError):
            return err.connection_invalidated
        dbapi = self._engine.dialect.dbapi
        return dbapi is not None and isinstance(err, dbapi.OperationalError | dbapi.InterfaceError)

    async def _insert_once(self, values: list[dict[str, Any]]) -> set[str]:
        try:
            async with self._guard():
                conn = await self._writer_connection()
                # Bounded: every queued write waits for this one.
                if self._pg_insert is not None:
                    cursor = await asyncio.wait_for(
                        self._writer_driver.execute(
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
            "request": request,
            "response": response,
            "created_at": _require_aware(created_at, "created_at")
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
        cutoff = (_require_aware(now, "now") if now else datetime.now(UTC)) - older_than
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

    # -- queries -----------------------------------------------------------------------

    async def workflow_totals(self, workflow_id: str) -> WorkflowTotals:
        """Token and cost totals of a workflow over all its runs and attempts.

        A workflow with no recorded usage gives all zeros (``calls == 0``).
        """
        where = _T.c.workflow_id == workflow_id
        totals = select(
            func.count(),
            *_token_sums(),
            func.sum(_T.c.cost_usd),
            _UNPRICED,
            _FAILED,
            func.count(distinct(_T.c.step)),
        ).where(where)
        # Portable COUNT(DISTINCT (a, b, c)): SQLite has no row-value DISTINCT.
        attempt_keys = (
            select(_T.c.run_id, _T.c.step, _T.c.activity_id, _T.c.attempt)
            .where(where)
            .distinct()
            .subquery()
        )
        attempts = select(func.count()).select_from(attempt_keys)
        async with self._connect(write=False) as conn:
            row = (await conn.execute(totals)).one()
            n_attempts = (await conn.execute(attempts)).scalar_one()
        return WorkflowTotals(
            workflow_id=workflow_id,
            calls=_int(row[0]),
            **_tokens(row, 1),
            cost_usd=row[6] if row[6] is not None else Decimal(0),
            unpriced_calls=_int(row[7]),
            failed_calls=_int(row[8]),
            steps=_int(row[9]),
            attempts=_int(n_attempts),
        )

    async def steps_for_workflow(self, workflow_id: str) -> list[StepStats]:
        """Per step and model: calls, attempts, tokens, cost; in order of first use."""
        keys = (
            select(_T.c.step, _T.c.model, _T.c.run_id, _T.c.activity_id, _T.c.attempt)
            .where(_T.c.workflow_id == workflow_id)
            .distinct()
            .subquery()
        )
        attempt_keys = select(keys.c.step, keys.c.model, func.count()).group_by(
            keys.c.step, keys.c.model
        )
        first = func.min(_T.c.recorded_at)
        stmt = (
            select(
                _T.c.step,
                _T.c.model,
                func.count(),
                *_token_sums(),
                func.sum(_T.c.cost_usd),
                _UNPRICED,
                _FAILED,
                func.avg(_T.c.latency_ms),
                first,
                func.max(_T.c.recorded_at),
            )
            .where(_T.c.workflow_id == workflow_id)
            .group_by(_T.c.step, _T.c.model)
            .order_by(first, _T.c.step, _T.c.model)
        )
        async with self._connect(write=False) as conn:
            rows = (await conn.execute(stmt)).all()
            attempts = {(s, m): n for s, m, n in (await conn.execute(attempt_keys)).all()}
        return [
            StepStats(
                step=r[0],
                model=r[1],
                calls=_int(r[2]),
                attempts=_int(attempts.get((r[0], r[1]))),
                **_tokens(r, 3),
                cost_usd=r[8],
                unpriced_calls=_int(r[9]),
                failed_calls=_int(r[10]),
                avg_latency_ms=None if r[11] is None else round(float(r[11])),
                first_recorded_at=r[12],
                last_recorded_at=r[13],
            )
            for r in rows
        ]

    async def cost_by_model(self, from_dt: datetime, to_dt: datetime) -> list[ModelCost]:
        """Per model, the usage recorded in ``[from_dt, to_dt)``; costliest first.

        Both bounds must be timezone-aware.
        """
        _require_aware(from_dt, "from_dt")
        _require_aware(to_dt, "to_dt")
        stmt = (
            select(_T.c.model, func.count(), *_token_sums(), func.sum(_T.c.cost_usd), _UNPRICED)
            .where(_T.c.recorded_at >= from_dt, _T.c.recorded_at < to_dt)
            .group_by(_T.c.model)
        )
        async with self._connect(write=False) as conn:
            rows = (await conn.execute(stmt)).all()
        out = [
            ModelCost(
                model=r[0],
                calls=_int(r[1]),
                **_tokens(r, 2),
                cost_usd=r[7],
                unpriced_calls=_int(r[8]),
            )
            for r in rows
        ]
        # Costliest first; unpriced models last; ties by name, so output is stable.
        out.sort(key=lambda m: (m.cost_usd is None, -(m.cost_usd or 0), m.model))
        return out

    async def debug_logs(
        self, workflow_id: str, *, limit: int | None = None
    ) -> list[DebugLogEntry]:
        """The saved request/response pairs of a workflow, oldest first."""
        stmt = (
            select(_D)
            .where(_D.c.workflow_id == workflow_id)
            .order_by(_D.c.created_at, _D.c.id)
            .limit(limit)
        )
        async with self._connect(write=False) as conn:
            rows = (await conn.execute(stmt)).mappings().all()
        return [DebugLogEntry.model_validate(dict(r)) for r in rows]


def _sqlite_on_connect(dbapi_conn: Any, _record: Any) -> None:
    # WAL: readers (the stats CLI) do not block the worker's writes, and vice versa.
    # Switching needs the file to itself, and SQLite can refuse at once (no busy wait)
    # while another store migrates a fresh file. The mode is kept in the file, so a few
    # tries (3.5 s at most, only ever while a new ledger file is being created) suffice.
    for attempt in range(20):
        cursor = dbapi_conn.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except Exception as err:
            if "locked" not in str(err) or attempt == 19:
                raise
        finally:
            cursor.close()
        time.sleep(0.05 * min(attempt + 1, 4))
