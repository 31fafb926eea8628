"""The ledger is down while a step calls a model and then fails: the failed attempt's
call must still reach the ledger, exactly once, whatever happens next.

The interceptor keeps usage it could not write in the failed attempt's heartbeat
details (the next attempt picks them up and hands them on) and, on the last attempt, in
the error's details (the workflow writes them before reporting the failure).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import pytest
import pytest_asyncio
from temporalio.client import Client, WorkflowFailureError

import baton_temporal as baton
from baton_temporal.ledger import LedgerStore
from baton_temporal.pricing import GenAIPricesPricer
from baton_temporal.testing import StandIn
from baton_temporal.testing.postgres import PostgresServer, start_postgres

from . import steps
from .support import ledger_rows, table, wait_until

pytestmark = pytest.mark.timeout(90)

FIGURES: list[tuple[Any, ...]] = []


@pytest.fixture(scope="module")
def own_postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server of this module's own: its tests stop and start it."""
    server = start_postgres()
    try:
        yield server
    finally:
        server.close()


@pytest_asyncio.fixture
async def ledger(own_postgres: PostgresServer) -> AsyncIterator[LedgerStore]:
    if not own_postgres.running:
        await asyncio.to_thread(own_postgres.start)
    url = own_postgres.create_database(f"outage_{uuid.uuid4().hex[:10]}")
    store = LedgerStore.from_url(url, pricer=GenAIPricesPricer(), connect_timeout=1)
    await store.migrate()
    try:
        yield store
    finally:
        if not own_postgres.running:
            await asyncio.to_thread(own_postgres.start)
        await store.close()


def flow_of(args: dict[str, Any], **options: Any) -> baton.Flow:
    return baton.new(workflow_name="outage").add(
        "flaky",
        steps.ask_then_fail,
        {"model": "gpt-4o", **args},
        options=baton.StepOptions(**options) if options else None,
    )


def gate(name: str) -> tuple[asyncio.Event, asyncio.Event]:
    steps.GATES[name] = asyncio.Event()
    steps.ARRIVED[name] = asyncio.Event()
    return steps.GATES[name], steps.ARRIVED[name]


async def check(store: LedgerStore, standin: StandIn, flow: baton.Flow, expected: list) -> None:
    rows = await ledger_rows(store, flow.workflow_id)
    assert sorted((r["attempt"], r["status"]) for r in rows) == expected
    assert len({r["call_key"] for r in rows}) == len(rows)
    assert standin.billed_calls() == len(rows)
    FIGURES.append((flow.workflow_id[:8], standin.billed_calls(), len(rows)))


@pytest.mark.parametrize("ledger_back", ["before attempt 2", "after attempt 2"])
async def test_failed_attempt_during_an_outage_is_recorded_once(
    client: Client,
    task_queue: str,
    baton_worker,
    ledger: LedgerStore,
    own_postgres: PostgresServer,
    ledger_back: str,
) -> None:
    name = f"gate-{uuid.uuid4().hex[:8]}"
    opened, arrived = gate(name)
    flow = flow_of({"succeed_on": 2, "gate": name})
    async with StandIn() as standin:
        await asyncio.to_thread(own_postgres.stop)
        async with baton_worker(steps.ALL, ledger=ledger, llm=standin.config()):
            handle = await flow.start(client, task_queue=task_queue)
            # Attempt 1 called the model and failed while the ledger was down.
            await asyncio.wait_for(arrived.wait(), 20)
            assert standin.billed_calls() == 1
            if ledger_back == "before attempt 2":
                await asyncio.to_thread(own_postgres.start)
                opened.set()
            else:
                opened.set()
                # Attempt 2 succeeds with the ledger still down: both calls wait in
                # Temporal (the record-usage activity retries) until it is back.
                await wait_until(lambda: standin.billed_calls() == 2, 20, "attempt 2 called")
                await asyncio.sleep(2)
                await asyncio.to_thread(own_postgres.start)
            result = await asyncio.wait_for(handle.result(), 45)
        assert result.results["flaky"] == {"ok": True, "attempt": 2}
        await check(ledger, standin, flow, [(1, "step_failed"), (2, "ok")])


async def test_usage_carried_across_an_attempt_that_timed_out(
    client: Client,
    task_queue: str,
    baton_worker,
    ledger: LedgerStore,
    own_postgres: PostgresServer,
) -> None:
    """Attempt 1 fails (ledger down), attempt 2 hangs until Temporal times it out (as a
    killed worker's would), attempt 3 succeeds: attempt 1's call still lands.

    Attempt 2 never reports anything itself, so attempt 1's usage survives only if
    attempt 2's heartbeats kept carrying it.
    """
    flow = flow_of(
        {"succeed_on": 3, "hang_on": 2},
        start_to_close_timeout=timedelta(seconds=3),
    )
    async with StandIn() as standin:
        await asyncio.to_thread(own_postgres.stop)
        async with baton_worker(steps.ALL, ledger=ledger, llm=standin.config()):
            handle = await flow.start(client, task_queue=task_queue)
            await wait_until(lambda: standin.billed_calls() == 2, 30, "attempt 3 called")
            await asyncio.sleep(1)
            await asyncio.to_thread(own_postgres.start)
            result = await asyncio.wait_for(handle.result(), 45)
        assert result.steps["flaky"].attempt == 3
        await check(ledger, standin, flow, [(1, "step_failed"), (3, "ok")])


async def test_step_that_fails_for_good_during_an_outage_keeps_every_call(
    client: Client,
    task_queue: str,
    baton_worker,
    ledger: LedgerStore,
    own_postgres: PostgresServer,
) -> None:
    flow = flow_of({"succeed_on": 0})  # fails on all of its 4 attempts
    async with StandIn() as standin:
        await asyncio.to_thread(own_postgres.stop)
        async with baton_worker(steps.ALL, ledger=ledger, llm=standin.config()):
            handle = await flow.start(client, task_queue=task_queue)
            await wait_until(lambda: standin.billed_calls() == 4, 30, "4 attempts")
            await asyncio.sleep(1)
            # The run waits for the usage to be written before it reports the failure.
            assert (await handle.describe()).status.name == "RUNNING"
            await asyncio.to_thread(own_postgres.start)
            with pytest.raises(WorkflowFailureError) as failure:
                await asyncio.wait_for(handle.result(), 45)
        assert "step broke after calling the model (attempt 4)" in str(failure.value.cause)
        await check(ledger, standin, flow, [(i, "step_failed") for i in range(1, 5)])
    print("\nledger outage while steps fail (flow, billed, recorded)")
    print(table(FIGURES, ("flow", "billed", "recorded")))
