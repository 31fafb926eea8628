"""The Temporal UI's step table shows what a finished step's calls cost: the cost the
worker puts in the step output reaches the table (it was once dropped when the
workflow read the output)."""

from __future__ import annotations

import uuid
from decimal import Decimal

from temporalio.api.sdk.v1 import WorkflowMetadata

import baton_temporal as baton

from .conftest import md_cells
from .ui_steps import STEPS, ask


async def test_details_table_shows_the_step_cost(
    client, task_queue, baton_worker, standin, ledger
) -> None:
    workflow_id = f"details-cost-{uuid.uuid4().hex[:8]}"
    flow = baton.new(workflow_name="details-cost", workflow_id=workflow_id).add(
        "ask_gpt", ask, {"workflow_model": "gpt-4o"}
    )
    async with baton_worker(steps=STEPS, ledger=ledger, llm=standin.config()):
        handle = await flow.start(client, task_queue=task_queue)
        await handle.result()
        meta = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
    text = meta.current_details
    totals = await ledger.workflow_totals(workflow_id)
    assert totals.calls == 1 and totals.cost_usd > 0
    row = md_cells("ask\\_gpt", "completed", "gpt\\-4o", "1")
    assert row in text, text
    shown = text.split(row)[1].split("|")[0].strip()
    assert shown.startswith("$"), text
    assert abs(Decimal(shown[1:]) - Decimal(str(totals.cost_usd))) <= Decimal("0.000001"), text
    assert "cost so far $" in text, text
