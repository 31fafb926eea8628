"""Fixtures of the cost-page tests: a ledger, the stand-in, the page server and a real
headless Chromium (the distribution's /usr/bin/chromium; tests/ensure-chromium.sh)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from baton_temporal.ledger import LedgerStore
from baton_temporal.testing import StandIn
from baton_temporal.ui import UIServer

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Where the screenshots go (printed by the tests): build/screenshots/ of the checkout.
SCREENSHOTS = Path(__file__).resolve().parents[2] / "build" / "screenshots"


@pytest_asyncio.fixture
async def standin() -> AsyncIterator[StandIn]:
    async with StandIn(latency=0.05) as s:
        yield s


@pytest_asyncio.fixture
async def ledger(tmp_path: Path) -> AsyncIterator[LedgerStore]:
    store = LedgerStore.from_url(f"sqlite:///{tmp_path / 'ledger.sqlite3'}", auto_migrate=True)
    await store.migrate()
    try:
        yield store
    finally:
        await store.close()


@pytest_asyncio.fixture
async def page_server(client: Any, ledger: LedgerStore) -> AsyncIterator[UIServer]:
    async with UIServer(client, ledger, port=0) as server:
        yield server


@pytest_asyncio.fixture
async def browser(tmp_path: Path) -> AsyncIterator[Any]:
    """A browser context of a real headless Chromium with a fresh profile."""
    from playwright.async_api import async_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run `bash tests/ensure-chromium.sh`", pytrace=False)
    async with async_playwright() as p:
        context = await p.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1280, "height": 900},
        )
        try:
            yield context
        finally:
            await context.close()


def screenshot_path(name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS / f"{name}.png"
