"""A hand-written workflow that calls a model through baton's helpers."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    import baton_temporal as baton

    from .steps import ask


@workflow.defn
class HandwrittenAsk:
    @workflow.run
    async def run(self, capped: bool) -> dict:
        options = baton.StepOptions(budget_usd="1") if capped else None
        return await baton.run_step(
            ask, {"model": "claude-sonnet-4-20250514", "calls": 2}, name="ask", options=options
        )
