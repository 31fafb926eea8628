from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from baton_temporal.testing import StandIn


@pytest_asyncio.fixture
async def standin() -> AsyncIterator[StandIn]:
    async with StandIn() as s:
        yield s
