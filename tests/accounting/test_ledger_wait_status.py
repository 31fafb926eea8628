"""A flow that waits on the ledger says so: `baton status` shows "waiting for the ledger".

A real PostgreSQL ledger is stopped while a step calls a model; the step completes, its
usage waits in Temporal (the baton.record_usage activity retries), and the real `baton`
program, run as a user would, names the wait and its reason. Once the ledger is back the
flow completes and the note is gone.
"""

from __future__ import annotations

import asyncio

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

import baton_temporal as baton
from baton_temporal.ledger import LedgerStore
from baton_temporal.pricing import GenAIPricesPricer
from baton_temporal.testing import StandIn
from baton_temporal.testing.postgres import start_postgres
from tests.ledger_support import ledger_rows

from ..cli._util import clean_env, run_baton
from . import steps

pytestmark = pytest.mark.timeout(150)


async def status_until(env: dict[str, str], workflow_id: str, text: str, timeout: float) -> str:
    """`baton status` output once it holds ``text`` (fails after ``timeout`` seconds)."""
    out = ""
    for _ in range(int(timeout / 0.5)):
        ran = await run_baton("status", workflow_id, env=env)
        out = ran.out + ran.err
        if text in out:
            return out
        await asyncio.sleep(0.5)
    raise AssertionError(f"`baton status` never showed {text!r}; last:\n{out}")


async def test_status_shows_a_flow_waiting_for_the_ledger(
    temporal_env: WorkflowEnvironment,
    client: Client,
    task_queue: str,
    baton_worker,
    standin: StandIn,
) -> None:  # type: ignore[no-untyped-def]
    env = clean_env(TEMPORAL_ADDRESS=temporal_env.client.service_client.config.target_host)
    server = await asyncio.to_thread(start_postgres)
    try:
        store = LedgerStore.from_url(server.url, pricer=GenAIPricesPricer(), connect_timeout=1)
        await store.migrate()
        standin.set_latency(1.0)
        flow = baton.new(workflow_name="ledger-wait").add("ask", steps.ask, {"model": "gpt-4o"})
        async with baton_worker([steps.ask], ledger=store, llm=standin.config()):
            handle = await flow.start(client, task_queue=task_queue)
            # The call is at the provider: take the ledger down under it.
            for _ in range(200):
                if standin.requests:
                    break
                await asyncio.sleep(0.05)
            await asyncio.to_thread(server.stop)
            waiting = await status_until(env, flow.workflow_id, "waiting for the ledger:", 60)
            await asyncio.to_thread(server.start)
            result = await asyncio.wait_for(handle.result(), 90)
            done = (await run_baton("status", flow.workflow_id, env=env)).out
        rows = await ledger_rows(store, flow.workflow_id)
        await store.close()
    finally:
        await asyncio.to_thread(server.close)
    line = next(x for x in waiting.splitlines() if x.startswith("waiting for the ledger:"))
    print(line)
    # The reason is the ledger's own error, and the line says what happens next.
    assert "LedgerUnavailable" in line and "unavailable" in line.lower()
    assert "the flow goes on once the ledger is writable again" in line
    assert "status      RUNNING" in waiting
    assert result.results["ask"]["texts"]
    assert "waiting for the ledger" not in done and "status      COMPLETED" in done
    # Nothing lost, nothing billed twice.
    assert len(rows) == standin.billed_calls() == 1
