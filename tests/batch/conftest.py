"""Fixtures of the batch tests: the stand-in (batch APIs on, short delays) and ledgers."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio

from baton_temporal.ledger import LedgerStore
from baton_temporal.testing import StandIn
from baton_temporal.testing.postgres import PostgresServer
from tests.ledger_support import migrated_store


@pytest_asyncio.fixture
async def standin() -> AsyncIterator[StandIn]:
    async with StandIn(batch_delay=0.5) as s:
        yield s


@pytest_asyncio.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[LedgerStore]:
    async with migrated_store(f"sqlite:///{tmp_path / 'ledger.sqlite3'}") as s:
        yield s


@pytest_asyncio.fixture
async def pg_store(postgres_server: PostgresServer) -> AsyncIterator[LedgerStore]:
    url = postgres_server.create_database(f"b_{uuid.uuid4().hex[:12]}")
    async with migrated_store(url) as s:
        yield s
