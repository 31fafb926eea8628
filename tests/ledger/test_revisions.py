"""The worker's revision check reads the version table without Alembic: it must read every
state of that table as Alembic does, on both real databases, and name the fix."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

import pytest
from sqlalchemy import text

from baton_temporal.ledger import LedgerConfigError, LedgerNotMigrated, LedgerStore
from baton_temporal.ledger._migrations import current_revisions, head_revisions
from baton_temporal.ledger._schema import VERSION_TABLE
from baton_temporal.pricing import GenAIPricesPricer
from baton_temporal.testing.postgres import PostgresServer


async def _read_both(store: LedgerStore) -> frozenset[str]:
    """The revisions as the worker reads them, after checking Alembic reads the same."""
    from alembic.runtime.migration import MigrationContext

    def alembic_reads(conn):  # type: ignore[no-untyped-def]
        ctx = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        return frozenset(ctx.get_current_heads())

    async with store.engine.connect() as conn:
        ours = await conn.run_sync(current_revisions)
        theirs = await conn.run_sync(alembic_reads)
    assert ours == theirs
    return ours


async def _set_versions(store: LedgerStore, versions: list[str]) -> None:
    async with store.engine.begin() as conn:
        await conn.execute(text(f"DELETE FROM {VERSION_TABLE}"))
        for version in versions:
            await conn.execute(
                text(f"INSERT INTO {VERSION_TABLE} (version_num) VALUES (:v)"), {"v": version}
            )


async def test_every_state_of_the_version_table_reads_as_alembic_reads_it(
    store: LedgerStore, caplog: pytest.LogCaptureFixture
) -> None:
    assert await _read_both(store) == head_revisions()
    await store.check_schema()

    # Behind this release: refused, naming the fix.
    await _set_versions(store, ["0001"])
    assert await _read_both(store) == {"0001"}
    with pytest.raises(LedgerNotMigrated, match=r"revision 0001.*`baton db upgrade`"):
        await store.check_schema()

    # Migrated by a newer release (additive): kept working, with a warning.
    await _set_versions(store, ["0099_newer"])
    assert await _read_both(store) == {"0099_newer"}
    with caplog.at_level(logging.WARNING, logger="baton_temporal"):
        await store.check_schema()
    assert "newer than this baton-temporal knows" in caplog.text

    # The table is there but holds no row (Alembic's state after downgrading to base).
    await _set_versions(store, [])
    assert await _read_both(store) == frozenset()
    with pytest.raises(LedgerNotMigrated, match="`baton db upgrade`"):
        await store.check_schema()


async def test_a_ledger_in_its_own_postgres_schema_is_found(
    postgres_server: PostgresServer,
) -> None:
    # The database's search_path puts the ledger in a schema of its own (not public).
    name = f"t_{uuid.uuid4().hex[:16]}"
    url = postgres_server.create_database(name)
    try:
        setup = LedgerStore.from_url(url, pricer=GenAIPricesPricer())
        async with setup.engine.begin() as conn:
            await conn.execute(text("CREATE SCHEMA ledger_s"))
            await conn.execute(text(f'ALTER DATABASE "{name}" SET search_path TO ledger_s'))
        await setup.close()
        async with LedgerStore.from_url(url, pricer=GenAIPricesPricer()) as store:
            with pytest.raises(LedgerNotMigrated, match="`baton db upgrade`"):
                await store.check_schema()
            await store.migrate()
            await store.check_schema()
            assert await _read_both(store) == head_revisions()
            async with store.engine.connect() as conn:
                where = await conn.scalar(
                    text(
                        "SELECT table_schema FROM information_schema.tables WHERE table_name = :t"
                    ),
                    {"t": VERSION_TABLE},
                )
            assert where == "ledger_s"
    finally:
        postgres_server.drop_database(name)


# Revision files as Alembic's templates and hands write them: plain and annotated
# assignments, a merge (a tuple down_revision), two branches, files with no revision.
LAYOUTS: dict[str, dict[str, str]] = {
    "annotated": {
        "a.py": 'revision: str = "a"\ndown_revision: str | None = None\n',
        "b.py": 'revision: str = "b"\ndown_revision: Union[str, Sequence[str], None] = "a"\n',
    },
    "merge": {
        "a.py": 'revision = "a"\ndown_revision = None\n',
        "b.py": 'revision = "b"\ndown_revision = "a"\n',
        "c.py": 'revision = "c"\ndown_revision = "a"\n',
        "d.py": 'revision = "d"\ndown_revision = ("b", "c")\n',
    },
    "branches": {
        "a.py": 'revision = "a"\ndown_revision = None\nbranch_labels = None\n',
        "b.py": 'revision = "b"\ndown_revision = "a"\n',
        "c.py": 'revision = "c"\ndown_revision = ["a"]\n',
        "__init__.py": '"""Not a revision."""\n',
    },
}


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_the_file_reader_agrees_with_alembic_on_any_layout(layout: str, tmp_path: Path) -> None:
    from alembic.script import ScriptDirectory

    from baton_temporal.ledger._migrations import _revision_graph

    (tmp_path / "versions").mkdir()
    for file, body in LAYOUTS[layout].items():
        (tmp_path / "versions" / file).write_text(
            "from __future__ import annotations\nfrom typing import Sequence, Union\n" + body
        )
    graph = _revision_graph(tmp_path)
    script = ScriptDirectory(str(tmp_path))
    assert set(graph) == {r.revision for r in script.walk_revisions()}
    followed = {down for downs in graph.values() for down in downs}
    assert set(graph) - followed == set(script.get_heads())


def test_an_install_without_migrations_names_the_fix(tmp_path: Path) -> None:
    # With no revision known, every database would pass the check, an empty one too.
    (tmp_path / "versions").mkdir()
    with pytest.raises(LedgerConfigError, match="reinstall baton-temporal"):
        head_revisions(tmp_path)
