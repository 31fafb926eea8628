"""An attempt cancelled while its ledger write is under way (worker shutting down, or
Temporal giving up on a late attempt) must still record the call it paid for.

Found by the SIGKILL trials: a worker starved of CPU heartbeated late, Temporal timed
its attempt out, and the cancellation arrived while the interceptor was writing the
ledger; the write was cancelled with it and a billed call was never recorded.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client
from temporalio.worker import Worker

import baton_temporal as baton
from baton_temporal.ledger import LedgerStore
from baton_temporal.pricing import GenAIPricesPricer
from baton_temporal.testing import StandIn

from .steps import ALL, ask
from .support import ledger_rows

pytestmark = pytest.mark.timeout(60)


class SlowLedger(LedgerStore):
    """A ledger whose writes take a while, and that says when one begins."""

    started: asyncio.Event

    async def record(self, records: Any) -> int:
        self.started.set()
        await asyncio.sleep(1.0)
        return await super().record(records)


async def test_a_write_under_way_finishes_when_the_attempt_is_cancelled(
    client: Client, task_queue: str, tmp_path: Path
) -> None:
    store = SlowLedger.from_url(
        f"sqlite:///{tmp_path / 'ledger.sqlite3'}", pricer=GenAIPricesPricer()
    )
    store.started = asyncio.Event()
    await store.migrate()
    flow = baton.new(workflow_name="cancelled-write").add(
        "ask",
        ask,
        {"model": "gpt-4o"},
        options=baton.StepOptions(heartbeat_timeout=timedelta(seconds=2)),
    )
    async with StandIn() as standin:
        plugin = baton.BatonPlugin(steps=ALL, ledger=store, llm=standin.config())
        # No grace: shutting down cancels the running attempt at once.
        doomed = Worker(
            client,
            task_queue=task_queue,
            plugins=[plugin],
            graceful_shutdown_timeout=timedelta(0),
        )
        async with doomed:
            handle = await flow.start(client, task_queue=task_queue)
            await asyncio.wait_for(store.started.wait(), 20)
            assert standin.billed_calls() == 1
        # The worker is down: the attempt was cancelled during its ledger write.
        store.started.clear()
        plugin = baton.BatonPlugin(steps=ALL, ledger=store, llm=standin.config())
        async with Worker(client, task_queue=task_queue, plugins=[plugin]):
            result = await asyncio.wait_for(handle.result(), 30)
        billed = standin.billed_calls()
    rows = await ledger_rows(store, flow.workflow_id)
    await store.close()
    assert result.steps["ask"].attempt == 2
    assert billed == 2
    # Attempt 1's write is the one call_llm makes when the reply arrives; the attempt was
    # cancelled during it, so the call is recorded and marked as made by a failed attempt.
    assert [(r["attempt"], r["status"]) for r in rows] == [(1, "step_failed"), (2, "ok")]
