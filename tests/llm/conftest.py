"""Fixtures for the LLM call layer: one stand-in server for the session, clean per test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio

from baton_temporal.llm import LLMClients, LLMConfig
from baton_temporal.testing import StandIn


@pytest.fixture(scope="session")
def standin_server() -> Iterator[StandIn]:
    with StandIn() as server:
        yield server


@pytest.fixture
def standin(standin_server: StandIn) -> StandIn:
    """The session's stand-in with no requests, scripts or cache state left by other tests."""
    standin_server.reset()
    return standin_server


@pytest.fixture
def config(standin: StandIn) -> LLMConfig:
    # Short timeout: a test that hangs fails in seconds, not minutes.
    return standin.config(timeout_s=5.0)


@pytest_asyncio.fixture(params=["aiohttp", "httpx"])
async def clients(request: pytest.FixtureRequest) -> AsyncIterator[LLMClients]:
    """The SDK clients under each HTTP transport: aiohttp (the default) and httpx."""
    async with LLMClients(transport=request.param) as shared:
        yield shared
