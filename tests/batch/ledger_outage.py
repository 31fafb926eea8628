"""The ledger (PostgreSQL) down when a batch's results arrive: the rows wait in Temporal
(baton.record_usage) and land once it is back, each once. ~25 s, so outside the suite:
``make batch-faults`` (pytest collects this file when it is named explicitly)."""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio.client import Client

from baton_temporal.ledger import LedgerStore
from baton_temporal.pricing import GenAIPricesPricer
from baton_temporal.testing import StandIn
from baton_temporal.testing.postgres import start_postgres
from tests.ledger_support import ledger_rows

from .steps import STEPS
from .test_batch import batch_flow


async def test_ledger_down_when_the_results_arrive(
    client: Client, task_queue: str, baton_worker: Any, standin: StandIn
) -> None:
    server = await asyncio.to_thread(start_postgres)
    try:
        store = LedgerStore.from_url(server.url, pricer=GenAIPricesPricer(), connect_timeout=2)
        await store.migrate()
        standin.batch.delay = 1.5
        flow = batch_flow(2)
        async with baton_worker(STEPS, ledger=store, llm=standin.config()):
            handle = await flow.start(client, task_queue=task_queue)
            while len(standin.batch.batches) < 2:
                await asyncio.sleep(0.05)
            await asyncio.to_thread(server.stop)
            # The results are fetched (and billed) while the ledger is down: their rows
            # wait in Temporal, in baton.record_usage, until it is back.
            while standin.batch.billed() < 4:
                await asyncio.sleep(0.05)
            await asyncio.sleep(2)
            await asyncio.to_thread(server.start)
            result = await asyncio.wait_for(handle.result(), 90)
        rows = await ledger_rows(store, flow.workflow_id)
        await store.close()
    finally:
        await asyncio.to_thread(server.close)
    assert len(result.results) == 4
    assert len(rows) == standin.batch.billed() == 4
    assert {r["service_tier"] for r in rows} == {"batch"}
