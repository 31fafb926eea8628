"""The Temporal UI's step table shows what a finished step's calls cost (the cost the
worker puts in the step output was once dropped when the workflow read the output), and
the model of a step that names it only in ``call_llm(model=...)`` (once shown as "—")."""

from __future__ import annotations

import uuid
from decimal import Decimal

from temporalio.api.sdk.v1 import WorkflowMetadata

import baton_temporal as baton

from .conftest import md_cells
from .ui_steps import STEPS, ask


@baton.step
async def ask_named(job: baton.Job) -> dict:
    """Names its model in the call only: no ``workflow_model`` arg."""
    reply = await baton.call_llm(job, [{"role": "user", "content": "Rate this."}], model="gpt-4o")
    return {"text": reply.text}


async def test_details_table_shows_the_step_cost(
    client, task_queue, baton_worker, standin, ledger
) -> None:
    workflow_id = f"details-cost-{uuid.uuid4().hex[:8]}"
    flow = (
        baton.new(workflow_name="details-cost", workflow_id=workflow_id)
        .add("ask_gpt", ask, {"workflow_model": "gpt-4o"})
        .add("ask_named", ask_named)
    )
    async with baton_worker(steps=[*STEPS, ask_named], ledger=ledger, llm=standin.config()):
        handle = await flow.start(client, task_queue=task_queue)
        await handle.result()
        meta = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
    text = meta.current_details
    totals = await ledger.workflow_totals(workflow_id)
    assert totals.calls == 2 and totals.cost_usd > 0
    row = md_cells("ask\\_gpt", "completed", "gpt\\-4o", "1")
    assert row in text, text
    shown = text.split(row)[1].split("|")[0].strip()
    assert shown.startswith("$"), text
    assert abs(2 * Decimal(shown[1:]) - Decimal(str(totals.cost_usd))) <= Decimal("0.000002"), text
    named = md_cells("ask\\_named", "completed", "gpt\\-4o", "1")
    assert named in text, text
    assert text.split(named)[1].split("|")[0].strip() == shown, text
    assert "cost so far $" in text, text
