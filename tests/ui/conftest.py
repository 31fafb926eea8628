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


@pytest_asyncio.fixture(scope="session")
async def chromium(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Any]:
    """One real headless Chromium for the session, with a fresh profile."""
    from playwright.async_api import async_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run `bash tests/ensure-chromium.sh`", pytrace=False)
    async with async_playwright() as p:
        context = await p.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1280, "height": 900},
        )
        try:
            yield context
        finally:
            await context.close()


@pytest_asyncio.fixture
async def browser(chromium: Any) -> AsyncIterator[Any]:
    """The session's browser; the pages a test opens are closed after it."""
    before = set(chromium.pages)
    try:
        yield chromium
    finally:
        for page in chromium.pages:
            if page not in before:
                await page.close()


def md_cells(*cells: str) -> str:
    """The start of a row of the Temporal UI step table: these cells, then the next."""
    from baton_temporal.workflow._details import GAP

    return "| " + " | ".join(c + GAP for c in cells) + " |"


def screenshot_path(name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS / f"{name}.png"
