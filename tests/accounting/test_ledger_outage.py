"""A ledger outage in the middle of a fan-out: nothing lost, nothing billed twice."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from temporalio.client import Client

import baton_temporal as baton
from baton_temporal.ledger import LedgerStore
from baton_temporal.pricing import GenAIPricesPricer
from baton_temporal.testing import Fault, StandIn
from baton_temporal.testing.postgres import start_postgres
from tests.ledger_support import ledger_rows
from workers.examples import seed

from .cost_steps import COST_STEPS, ask_once

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


@pytest.mark.slow
async def test_an_intent_written_before_an_outage_never_becomes_a_false_lost_reply(
    client: Client, task_queue: str, baton_worker, standin: StandIn
) -> None:
    # The intent is written, the ledger goes down, and the provider answers 500 (not
    # billed): the intent's removal cannot reach the ledger then. It travels with the
    # step's unwritten usage until the ledger is back; the run's end leaves nothing that
    # `baton db reconcile` would take for a lost reply.
    server = await asyncio.to_thread(start_postgres)
    try:
        store = LedgerStore.from_url(server.url, pricer=GenAIPricesPricer(), connect_timeout=2)
        await store.migrate()
        standin.script("gpt-4o", [Fault.status(500, delay=1.5), Fault.ok()])
        flow = baton.new(workflow_name="outage-intent").add("ask", ask_once, {"model": "gpt-4o"})
        async with baton_worker(COST_STEPS, ledger=store, llm=standin.config()):
            handle = await flow.start(client, task_queue=task_queue)
            await wait_until(lambda: len(standin.requests) >= 1)  # intent written, request out
            await asyncio.to_thread(server.stop)
            # The 500 comes, the retry is answered and billed, all while the ledger is down.
            await wait_until(lambda: standin.billed_calls() == 1, 60)
            await asyncio.sleep(2)
            await asyncio.to_thread(server.start)
            result = await asyncio.wait_for(handle.result(), 90)
        ended = await store.reconcile_ended(_ended, older_than=timedelta(0))
        rows = await ledger_rows(store, flow.workflow_id)
        await store.close()
    finally:
        await asyncio.to_thread(server.close)
    assert result.steps["ask"].attempt == 2
    assert [r.billed for r in standin.requests] == [False, True]
    assert ended.lost_replies == 0
    assert [(r["attempt"], r["status"]) for r in rows] == [(2, "ok")]


async def _ended(workflow_id: str, run_id: str) -> bool:
    return True
