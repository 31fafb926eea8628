"""Fixtures of the batch tests: the stand-in (batch APIs on, short delays) and ledgers."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest_asyncio
import sqlalchemy as sa

from baton_temporal.ledger import LedgerStore
from baton_temporal.ledger._schema import StepStat
from baton_temporal.pricing import GenAIPricesPricer
from baton_temporal.testing import StandIn
from baton_temporal.testing.postgres import PostgresServer


@pytest_asyncio.fixture
async def standin() -> AsyncIterator[StandIn]:
    async with StandIn(batch_delay=0.5) as s:
        yield s


@pytest_asyncio.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[LedgerStore]:
    s = LedgerStore.from_url(f"sqlite:///{tmp_path / 'ledger.sqlite3'}", pricer=GenAIPricesPricer())
    await s.migrate()
    try:
        yield s
    finally:
        await s.close()


@pytest_asyncio.fixture
async def pg_store(postgres_server: PostgresServer) -> AsyncIterator[LedgerStore]:
    url = postgres_server.create_database(f"b_{uuid.uuid4().hex[:12]}")
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
