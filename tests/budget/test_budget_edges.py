"""Budget edges a user (or a long flow) runs into: continue-as-new, local steps, a step
that catches the refusal, hand-written workflows."""

from __future__ import annotations

import uuid
from decimal import Decimal
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowFailureError

import baton_temporal as baton
from baton_temporal.testing import StandIn

from .handwritten import HandwrittenAsk
from .steps import ALL, PRICES, SONNET, ask, ask_locally, ask_or_skip, long_answer, plain
from .test_budget import budget_failure, open_store, replays, spent_in_ledger

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def standin():
    async with StandIn(responder=long_answer) as s:
        yield s


@pytest.mark.slow  # ~5 s: several runs
async def test_spend_carries_over_continue_as_new(
    client: Client, task_queue: str, baton_worker, standin: StandIn, tmp_path: Path
) -> None:
    # Six calls in a chain, the history cut every few steps: the cap ($4.50, four calls)
    # must hold across the runs, not restart with each.
    store = await open_store(tmp_path)
    flow = baton.new(
        workflow_name="long", budget_usd="4.50", max_history_events=20, max_concurrency=1
    )
    for i in range(6):
        flow = flow.add(f"s{i}", ask, {"model": SONNET}, deps=[f"s{i - 1}"] if i else [])
    async with baton_worker(ALL, ledger=store, llm=standin.config(), pricer=PRICES):
        handle = await flow.start(client, task_queue=task_queue)
        with pytest.raises(WorkflowFailureError) as err:
            await handle.result()
        view = await handle.query("baton.budget")
        description = await handle.describe()
        await replays(await handle.fetch_history())  # the last run, from its carried book
    assert budget_failure(err).type == "BudgetExceeded"
    assert description.run_id != handle.first_execution_run_id  # it did continue as new
    assert standin.billed_calls() == 4
    spent = await spent_in_ledger(store, flow.workflow_id)
    assert Decimal(view["spent_usd"]) == spent <= Decimal("4.50")
    print(f"\ncontinue-as-new: 4 of 6 chained calls, spent {spent} of cap 4.50 over the runs")
    await store.close()


async def test_a_refusal_the_step_catches_still_stops_the_flow(
    client: Client, task_queue: str, baton_worker, standin: StandIn, tmp_path: Path
) -> None:
    store = await open_store(tmp_path)
    flow = (
        baton.new(workflow_name="catch", budget_usd="0.50")
        .add("a", ask_or_skip)
        .add("b", plain, deps=["a"])
    )
    async with baton_worker(ALL, ledger=store, llm=standin.config(), pricer=PRICES):
        handle = await flow.start(client, task_queue=task_queue)
        with pytest.raises(WorkflowFailureError) as err:
            await handle.result()
        states = await handle.query("baton.steps")
    assert states["a"]["state"] == "completed" and states["b"]["state"] == "cancelled"
    message = budget_failure(err).message
    assert "stopped by its budget" in message and "steps not started: b" in message
    assert standin.billed_calls() == 0
    await store.close()


async def test_local_steps_and_hand_written_workflows_say_what_to_do(
    client: Client, task_queue: str, baton_worker, standin: StandIn, tmp_path: Path
) -> None:
    store = await open_store(tmp_path)
    local = baton.new(workflow_name="local", budget_usd="5").add("l", ask_locally)
    async with baton_worker(
        ALL,
        workflows=[HandwrittenAsk],
        ledger=store,
        llm=standin.config(),
        pricer=PRICES,
        budget_usd="0.50",
    ):
        with pytest.raises(WorkflowFailureError) as err:
            await local.run(client, task_queue=task_queue)
        assert "run the step as a regular activity (local=False)" in budget_failure(err).message
        # A step cap in a hand-written workflow is refused, not silently ignored.
        with pytest.raises(WorkflowFailureError) as err:
            await client.execute_workflow(
                HandwrittenAsk.run, True, id=f"hw-{uuid.uuid4().hex[:8]}", task_queue=task_queue
            )
        failure = budget_failure(err)
        assert failure.type == "BudgetUnsupported" and "baton.new(...)" in failure.message
        # The worker's default cap (here $0.50, less than one call) is for flows only.
        result = await client.execute_workflow(
            HandwrittenAsk.run, False, id=f"hw-{uuid.uuid4().hex[:8]}", task_queue=task_queue
        )
    assert len(result["texts"]) == 2 and standin.billed_calls() == 2
    await store.close()
