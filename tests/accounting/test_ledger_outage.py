"""A ledger outage in the middle of a fan-out: nothing lost, nothing billed twice."""

from __future__ import annotations

import asyncio

import pytest
from temporalio.client import Client

from baton_temporal.ledger import LedgerStore
from baton_temporal.pricing import GenAIPricesPricer
from baton_temporal.testing import StandIn
from baton_temporal.testing.postgres import start_postgres
from workers.examples import seed

from .conftest import ledger_rows

pytestmark = pytest.mark.timeout(150)

TEXT = "First paragraph of the report.\n\nSecond paragraph, with the numbers."


async def wait_until(predicate, timeout: float = 30) -> None:  # type: ignore[no-untyped-def]
    for _ in range(int(timeout / 0.05)):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition never became true")


async def test_postgres_down_mid_fan_out_then_back(
    client: Client, task_queue: str, baton_worker, standin: StandIn
) -> None:
    server = await asyncio.to_thread(start_postgres)
    try:
        store = LedgerStore.from_url(server.url, pricer=GenAIPricesPricer(), connect_timeout=2)
        await store.migrate()
        standin.set_latency(1.5)
        flow = seed.quality_flow(TEXT)
        async with baton_worker(seed.STEPS, ledger=store, llm=standin.config()):
            handle = await flow.start(client, task_queue=task_queue)
            # The three assess calls are at the provider: take the ledger down.
            await wait_until(lambda: len(standin.requests) >= 3)
            await asyncio.to_thread(server.stop)
            # The calls finish and are billed while the ledger is down; their usage waits
            # in Temporal (the record-usage activity retries), the flow waits with it.
            await wait_until(lambda: standin.billed_calls() == 3)
            await asyncio.sleep(3)
            states = await handle.query("baton.steps")
            assert states["assess_synthesis"]["state"] == "pending"
            assert standin.billed_calls() == 3
            await asyncio.to_thread(server.start)
            result = await asyncio.wait_for(handle.result(), 90)
        rows = await ledger_rows(store, flow.workflow_id)
        await store.close()
    finally:
        await asyncio.to_thread(server.close)
    assert result.results["report"]["markdown"].startswith("# Document quality report")
    # Every call the stand-in billed is in the ledger exactly once, and the outage made
    # no model call happen again.
    assert len(standin.requests) == standin.billed_calls() == 5
    assert len(rows) == 5 and len({r["call_key"] for r in rows}) == 5
    assert sorted(r["step"] for r in rows) == sorted(
        ["assess_sonnet_4", "assess_opus_4", "assess_gpt_4o", "assess_synthesis", "report"]
    )
    assert all(r["attempt"] == 1 for r in rows)
