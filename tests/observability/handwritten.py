"""A hand-written (sandboxed) workflow, to trace with the sandbox in the way."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    import baton_temporal as baton

    from .steps import parse


@workflow.defn
class TracedByHand:
    @workflow.run
    async def run(self, text: str) -> dict:
        return await baton.run_step(parse, {"text": text}, name="parse")
