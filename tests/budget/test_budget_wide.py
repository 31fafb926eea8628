"""A wide fan-out under a cap: more concurrent calls than Temporal takes updates in flight
per run (10); the workers batch their requests (steps/_budget_guard.py)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowFailureError

import baton_temporal as baton
from baton_temporal.testing import StandIn

from .steps import ALL, PRICES, SONNET, ask, long_answer
from .test_budget import open_store, spent_in_ledger

pytestmark = pytest.mark.timeout(300)


async def test_thirty_concurrent_steps(
    client: Client, task_queue: str, baton_worker, tmp_path: Path
) -> None:
    store = await open_store(tmp_path)
    flow = baton.new(workflow_name="wide", budget_usd="20.50")
    for i in range(30):
        flow = flow.add(f"s{i}", ask, {"model": SONNET})
    async with StandIn(responder=long_answer, latency=0.3) as standin:
        async with baton_worker(ALL, ledger=store, llm=standin.config(), pricer=PRICES):
            handle = await flow.start(client, task_queue=task_queue)
            with pytest.raises(WorkflowFailureError):
                await handle.result()
            view = await handle.query("baton.budget")
            states = await handle.query("baton.steps")
            updates = [
                e
                async for e in handle.fetch_history_events()
                if e.HasField("workflow_execution_update_accepted_event_attributes")
            ]
        billed = standin.billed_calls()
    spent = await spent_in_ledger(store, flow.workflow_id)
    done = [n for n, s in states.items() if s["state"] == "completed"]
    refused = [n for n, s in states.items() if "BudgetExceeded" in (s["error"] or "")]
    # $20.50 fits twenty ~$1.02 worst cases: twenty run, ten are refused, none retried.
    assert len(done) == billed == view["calls"] == 20 and len(refused) == 10
    assert all(s["attempt"] <= 1 for s in states.values())
    assert spent == Decimal(view["spent_usd"]) and spent <= Decimal("20.50")
    # 30 reservations and 20 settlements went in fewer updates: requests queued while
    # one was in flight went together (Temporal takes 10 in flight per run).
    assert len(updates) < 50
    print(
        f"\nwide: 30 concurrent steps, {billed} calls granted, spent {spent} of cap 20.50, "
        f"{len(updates)} budget updates"
    )
