"""Fixtures for the usage-accounting tests: the provider stand-in and ledgers on SQLite
and on a real PostgreSQL server."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from baton_temporal.ledger import LedgerStore
from baton_temporal.testing import StandIn
from baton_temporal.testing.postgres import PostgresServer
from tests.ledger_support import migrated_store


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
    async with migrated_store(url) as s:
        yield s
