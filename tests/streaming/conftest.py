"""Fixtures for the Responses API and streaming tests: a stand-in per session, clean per
test, and an SQLite ledger per test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import sqlalchemy as sa

from baton_temporal.ledger import LedgerStore
from baton_temporal.ledger._schema import StepStat
from baton_temporal.llm import LLMClients, LLMConfig
from baton_temporal.pricing import GenAIPricesPricer
from baton_temporal.testing import StandIn


@pytest.fixture(scope="session")
def standin_server() -> Iterator[StandIn]:
    with StandIn() as server:
        yield server


@pytest.fixture
def standin(standin_server: StandIn) -> StandIn:
    standin_server.reset()
    return standin_server


@pytest.fixture
def config(standin: StandIn) -> LLMConfig:
    return standin.config(timeout_s=10.0)


@pytest_asyncio.fixture
async def clients() -> AsyncIterator[LLMClients]:
    async with LLMClients() as shared:
        yield shared


@pytest_asyncio.fixture
async def store(tmp_path: Path) -> AsyncIterator[LedgerStore]:
    s = LedgerStore.from_url(f"sqlite:///{tmp_path / 'ledger.sqlite3'}", pricer=GenAIPricesPricer())
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
