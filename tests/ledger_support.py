"""Ledgers for tests: a migrated store on a URL, and the rows a workflow left in it.

Example::

    async with migrated_store(f"sqlite:///{tmp_path / 'ledger.sqlite3'}") as store:
        ...
        rows = await ledger_rows(store, workflow_id)
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import sqlalchemy as sa

from baton_temporal.ledger import LedgerStore
from baton_temporal.ledger._schema import StepStat
from baton_temporal.pricing import GenAIPricesPricer

__all__ = ["ledger_rows", "migrated_store"]


@asynccontextmanager
async def migrated_store(url: str) -> AsyncIterator[LedgerStore]:
    """A store on ``url``, migrated, priced by genai-prices, closed on exit."""
    store = LedgerStore.from_url(url, pricer=GenAIPricesPricer())
    await store.migrate()
    try:
        yield store
    finally:
        await store.close()


async def ledger_rows(store: LedgerStore, workflow_id: str) -> list[dict[str, Any]]:
    """Every row the workflow left, in the order written."""
    table = StepStat.__table__
    async with store.engine.connect() as conn:
        result = await conn.execute(
            sa.select(table).where(table.c.workflow_id == workflow_id).order_by(table.c.id)
        )
        return [dict(r) for r in result.mappings().all()]
