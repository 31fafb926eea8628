"""Fixtures for the Responses API and streaming tests: a stand-in per session, clean per
test, and an SQLite ledger per test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from baton_temporal.ledger import LedgerStore
from baton_temporal.llm import LLMClients, LLMConfig
from baton_temporal.testing import StandIn
from tests.ledger_support import migrated_store


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


@pytest_asyncio.fixture(params=["aiohttp", "httpx"])
async def clients(request: pytest.FixtureRequest) -> AsyncIterator[LLMClients]:
    """The SDK clients under each HTTP transport: aiohttp (the default) and httpx."""
    async with LLMClients(transport=request.param) as shared:
        yield shared


@pytest_asyncio.fixture
async def store(tmp_path: Path) -> AsyncIterator[LedgerStore]:
    async with migrated_store(f"sqlite:///{tmp_path / 'ledger.sqlite3'}") as s:
        yield s
