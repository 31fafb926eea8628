"""Alembic migrations of the ledger tables.

They are run by ``await LedgerStore.migrate()`` (and ``baton db upgrade``); no
``alembic.ini`` is needed. To write a new revision against a scratch database::

    from alembic import command
    from baton_temporal.ledger._migrations import alembic_config

    cfg = alembic_config("sqlite:///scratch.sqlite3")
    command.upgrade(cfg, "head")
    command.revision(cfg, message="add a column", autogenerate=True)

Every revision must run on both PostgreSQL and SQLite (``render_as_batch`` is on, so
``op.batch_alter_table`` works on SQLite) and must be additive where it can be: workers
of the previous release keep writing while a rolling deploy runs.
"""
