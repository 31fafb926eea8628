"""A prompt sent as a parameter is held against the cap like one sent as messages: a
Responses call whose `instructions` cost more than the cap is refused before it leaves
(it was once granted on the worst case of its short messages, and the flow overspent)."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError

import baton_temporal as baton
from baton_temporal.ledger import LedgerStore
from baton_temporal.pricing import TablePricer
from baton_temporal.testing import StandIn

# $100 per million input tokens: the stand-in counts 40,000 characters as 10,000 tokens,
# $1.00, twice the cap.
PRICER = TablePricer({"gpt-4o": {"input": "100", "output": "100"}})
INSTRUCTIONS = "Follow the house style. " * 1_700


@baton.step
async def instructed(job: baton.Job) -> dict:
    reply = await baton.call_llm(
        job,
        [{"role": "user", "content": "hi"}],
        model="gpt-4o",
        api="responses",
        instructions=INSTRUCTIONS,
        max_tokens=10,
    )
    return {"text": reply.text}


async def test_instructions_count_against_the_cap(
    client: Client, task_queue: str, baton_worker, tmp_path: Path
) -> None:
    store = LedgerStore.from_url(f"sqlite:///{tmp_path / 'ledger.sqlite3'}", pricer=PRICER)
    await store.migrate()
    flow = baton.new(workflow_name="instructed", budget_usd="0.50").add("i", instructed)
    async with StandIn(latency=0.01) as standin:
        async with baton_worker([instructed], ledger=store, llm=standin.config(), pricer=PRICER):
            with pytest.raises(WorkflowFailureError) as err:
                await flow.run(client, task_queue=task_queue)
        assert standin.billed_calls() == 0
    cause = err.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == baton.BUDGET_EXCEEDED, cause
    assert "the flow's budget of $0.50 would be exceeded" in cause.message, cause.message
    assert "raise budget_usd" in cause.message, cause.message
    await store.close()
