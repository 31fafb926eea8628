"""What every part of the store shares: the engine, the pricer, connections, the schema
check, and the translation of database errors into the ledger's own.

The rule of the translation: :class:`LedgerUnavailable` (retryable) only when the
database cannot be reached (refused or dropped connection, timeout, SQLite busy or
locked, PostgreSQL shutting down). A database that answers and refuses
(a value out of range, a constraint, too many parameters) raises
:class:`LedgerWriteError`: retrying would give the same answer forever.

Example::

    class Store(StoreCore): ...     # see _store.LedgerStore
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ..pricing import Pricer, pricer_from_env
from ._config import LedgerError, LedgerNotMigrated, safe_url
from ._errors import PG_TRANSIENT as _PG_TRANSIENT
from ._errors import STATEMENT_FAULTS as _STATEMENT_FAULTS
from ._errors import not_migrated, refused, unavailable
from ._migrations import current_revisions, migrate_sync
from ._revisions import check_revisions

__all__ = ["StoreCore"]

log = logging.getLogger("baton_temporal.ledger")

# SQLite's "come back later" answers (another process holds the file).
_SQLITE_TRANSIENT = ("database is locked", "database is busy", "unable to open database")


class StoreCore:
    """Engine, pricer, connections and schema checks of a :class:`LedgerStore`."""

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
        return f"{type(self).__name__}({self.url!r})"

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
            return not_migrated(self.url, text)
        if self._unreachable(err, orig, text):
            return unavailable(self.url, text)
        if isinstance(err, sa_exc.SQLAlchemyError) or self._is_driver_error(orig):
            return refused(self.url, text)
        return None

    def _unreachable(self, err: BaseException, orig: BaseException, text: str) -> bool:
        lowered = text.lower()
        if any(s in lowered for s in _STATEMENT_FAULTS):
            return False
        if isinstance(err, OSError | sa_exc.TimeoutError | asyncio.TimeoutError):
            return True
        if isinstance(err, sa_exc.DBAPIError) and err.connection_invalidated:
            return True
        if self.dialect == "sqlite":
            return any(s in lowered for s in _SQLITE_TRANSIENT) or "disk i/o" in lowered
        sqlstate = getattr(orig, "sqlstate", None)
        if sqlstate is not None:
            return sqlstate.startswith("08") or sqlstate in _PG_TRANSIENT
        # psycopg's errors without a SQLSTATE come from the connection, not the server.
        return self._is_connection_error(orig) or isinstance(err, sa_exc.InterfaceError)

    def _driver_errors(self, *names: str) -> tuple[type[BaseException], ...]:
        dbapi = self._engine.dialect.dbapi
        # The aiosqlite adapter has no InterfaceError, for one: never assume a name.
        found = (getattr(dbapi, name, None) for name in names) if dbapi is not None else ()
        return tuple(t for t in found if isinstance(t, type) and issubclass(t, BaseException))

    def _is_connection_error(self, err: BaseException | None) -> bool:
        kinds = self._driver_errors("OperationalError", "InterfaceError")
        return bool(kinds) and isinstance(err, kinds)

    def _is_driver_error(self, err: BaseException | None) -> bool:
        kinds = self._driver_errors("Error")
        return bool(kinds) and isinstance(err, kinds)

    def _was_dropped(self, err: BaseException | None) -> bool:
        """Whether ``err`` says the connection failed, not the statement: an invalidated
        SQLAlchemy connection, or the driver's own connection errors (PostgreSQL's usage
        INSERT goes to psycopg directly)."""
        if isinstance(err, sa_exc.DBAPIError):
            return err.connection_invalidated
        if err is None or any(s in str(err).lower() for s in _STATEMENT_FAULTS):
            return False
        if getattr(err, "sqlstate", None) is not None:
            return str(getattr(err, "sqlstate", "")).startswith("08")
        return self._is_connection_error(err)

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
            # process-wide state (see _migrations); the event loop stays free meanwhile.
            await asyncio.to_thread(migrate_sync, self._engine.url, self._connect_timeout)
        self._schema_ok = True

    async def check_schema(self) -> None:
        """Raise :class:`LedgerNotMigrated` unless the tables are at the newest revision."""
        async with self._guard(), self._engine.connect() as conn:
            current = await conn.run_sync(current_revisions)
        check_revisions(self.url, current)

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

    # Defined by the writer; the core's close() needs it.
    async def _drop_writer(self, *, broken: bool) -> None:
        return None

    async def close(self) -> None:
        """Release the connection pool."""
        await self._drop_writer(broken=False)
        await self._engine.dispose()
