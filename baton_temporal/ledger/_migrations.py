"""The ledger's Alembic migrations: configuration, revision checks, the upgrade itself.

Example::

    from alembic import command
    command.upgrade(alembic_config("postgresql://baton@db/baton"), "head")
"""

from __future__ import annotations

import math
import threading
import time
from typing import Any

from sqlalchemy import Connection, event, inspect, text
from sqlalchemy.engine import URL

from ._config import to_sync_url
from ._revisions import (  # re-exported: their home before the worker stopped loading us
    MIGRATIONS_DIR,
    VERSION_TABLE,
    _revision_graph,  # noqa: F401  (tests read layouts through it)
    head_revisions,
    known_revisions,
)

__all__ = [
    "MIGRATIONS_DIR",
    "alembic_config",
    "current_revisions",
    "head_revisions",
    "known_revisions",
    "migrate_sync",
    "sqlite_on_connect",
]


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


def current_revisions(conn: Connection) -> frozenset[str]:
    """The revisions the database is at (empty: never migrated)."""
    if not inspect(conn).has_table(VERSION_TABLE):
        return frozenset()
    rows = conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}"))
    return frozenset(str(row[0]) for row in rows)


def _upgrade(conn: Connection) -> None:
    from alembic import command

    cfg = alembic_config()
    cfg.attributes["connection"] = conn
    command.upgrade(cfg, "head")


# Alembic's `alembic.context` is a process-wide proxy: two upgrades running at once in
# one process (two stores, or two event loops) would overwrite each other's context.
# Other processes are kept apart by the database (advisory lock / BEGIN IMMEDIATE).
_MIGRATE_LOCK = threading.Lock()


def migrate_sync(url: URL, connect_timeout: float) -> None:
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
            sqlite_on_connect(dbapi_conn, _record)

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


def sqlite_on_connect(dbapi_conn: Any, _record: Any) -> None:
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
