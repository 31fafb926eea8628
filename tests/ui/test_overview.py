"""The ledger reads behind the cost page, on SQLite and a real PostgreSQL: the cost of
many workflows at once, and cost by model in time buckets (bucketing is SQL that differs
per backend)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import pytest_asyncio

from baton_temporal.ledger import LedgerStore, UsageRecord
from baton_temporal.pricing import GenAIPricesPricer
from baton_temporal.testing.postgres import PostgresServer
from baton_temporal.usage import LLMUsage

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest_asyncio.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[LedgerStore]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    else:
        server: PostgresServer = request.getfixturevalue("postgres_server")
        url = server.create_database(f"ui_{uuid.uuid4().hex[:12]}")
    s = LedgerStore.from_url(url, pricer=GenAIPricesPricer())
    await s.migrate()
    try:
        yield s
    finally:
        await s.close()


def call(workflow_id: str, model: str, at: datetime, n: int) -> UsageRecord:
    return UsageRecord(
        workflow_id=workflow_id,
        run_id="r",
        step="ask",
        activity_id=str(n),
        attempt=1,
        usage=LLMUsage(model=model, input_tokens=1000, output_tokens=100),
        recorded_at=at,
    )


async def test_costs_and_buckets(store: LedgerStore) -> None:
    await store.record(
        [
            call("wf-a", "gpt-4o", START + timedelta(minutes=1), 1),
            call("wf-a", "gpt-4o", START + timedelta(minutes=59, seconds=59.9), 2),
            call("wf-b", "claude-sonnet-4-20250514", START + timedelta(minutes=61), 3),
            call("wf-b", "unknown-local-model", START + timedelta(minutes=62), 4),
            call("wf-c", "gpt-4o", START + timedelta(hours=5), 5),  # outside the range
        ]
    )
    costs = await store.costs_for_workflows(["wf-a", "wf-b", "wf-none", "wf-a"])
    assert sorted(costs) == ["wf-a", "wf-b"]
    one = await store.workflow_totals("wf-a")
    assert costs["wf-a"].calls == 2 and costs["wf-a"].cost_usd == one.cost_usd > 0
    assert costs["wf-b"].unpriced_calls == 1 and costs["wf-b"].cost_usd > 0

    points = await store.cost_over_time(
        START, START + timedelta(hours=2), bucket=timedelta(hours=1)
    )
    got = [(p.start, p.model, p.calls, p.unpriced_calls) for p in points]
    assert got == [
        (START, "gpt-4o", 2, 0),  # 12:59:59.9 is still the first hour
        (START + timedelta(hours=1), "claude-sonnet-4-20250514", 1, 0),
        (START + timedelta(hours=1), "unknown-local-model", 1, 1),
    ]
    assert points[0].cost_usd == one.cost_usd
    assert points[2].cost_usd is None
    with pytest.raises(ValueError, match="timezone-aware"):
        await store.cost_over_time(START.replace(tzinfo=None), START, bucket=timedelta(hours=1))
    with pytest.raises(ValueError, match="at least one second"):
        await store.cost_over_time(START, START, bucket=timedelta(0))
    assert Decimal(0) < one.cost_usd
