"""Alembic environment of the ledger.

Normally run by :meth:`LedgerStore.migrate`, which hands over an open connection in
``config.attributes["connection"]``. Run by Alembic's own commands (see the package
docstring) it connects to ``sqlalchemy.url`` with a synchronous driver instead, and
``--sql`` (offline mode) prints the DDL for a DBA to review.
"""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import Connection, create_engine, pool, text

from baton_temporal.ledger._config import to_sync_url
from baton_temporal.ledger._schema import VERSION_TABLE, Base

config = context.config
target_metadata = Base.metadata

# Held while migrating on PostgreSQL, so that several workers started together with
# auto-migrate run the upgrade one after the other instead of racing to CREATE TABLE.
# (An arbitrary constant: "baton" in ASCII.)
_PG_LOCK_KEY = 0x6261746F6E


def _configure(**kwargs: Any) -> None:
    context.configure(
        target_metadata=target_metadata,
        version_table=VERSION_TABLE,
        render_as_batch=True,  # ALTER on SQLite goes through table copies
        compare_type=True,
        **kwargs,
    )


def run_migrations_offline() -> None:
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("set sqlalchemy.url to the ledger database URL")
    _configure(url=to_sync_url(url), literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def _run(connection: Connection) -> None:
    _configure(connection=connection)
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Transaction-scoped: released by the commit that ends the upgrade. Taken
            # before Alembic reads the current revision, so a waiter sees the new one.
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("set sqlalchemy.url to the ledger database URL")
    engine = create_engine(to_sync_url(url), poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            _run(conn)
            conn.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
