"""Fixtures for the usage-accounting tests: the provider stand-in and ledgers on SQLite
and on a real PostgreSQL server."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import sqlalchemy as sa

from baton_temporal.ledger import LedgerStore
from baton_temporal.ledger._schema import StepStat
from baton_temporal.pricing import GenAIPricesPricer
from baton_temporal.testing import StandIn
from baton_temporal.testing.postgres import PostgresServer


@pytest_asyncio.fixture
async def standin() -> AsyncIterator[StandIn]:
    async with StandIn() as s:
        yield s


@pytest_asyncio.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[LedgerStore]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    else:
        server: PostgresServer = request.getfixturevalue("postgres_server")
        url = server.create_database(f"a_{uuid.uuid4().hex[:12]}")
    s = LedgerStore.from_url(url, pricer=GenAIPricesPricer())
    await s.migrate()
    try:
        yield s
    finally:
        await s.close()


async def ledger_rows(store: LedgerStore, workflow_id: str) -> list[dict[str, Any]]:
    table = StepStat.__table__
    async with store.engine.connect() as conn:
        result = await conn.execute(
            sa.select(table).where(table.c.workflow_id == workflow_id).order_by(table.c.id)
        )
        return [dict(r) for r in result.mappings().all()]
