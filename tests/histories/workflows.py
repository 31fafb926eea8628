"""The hand-written workflow of the recorded scenarios (sandboxed, as users' are).

Its type name and command sequence are part of the recorded corpus: change it only as
you would change a workflow that has runs in flight.
"""

from __future__ import annotations

from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    import baton_temporal as baton
    from baton_temporal import multi_model

    from .steps import seed

__all__ = ["HandwrittenQuality"]


@workflow.defn(name="histories.HandwrittenQuality")
class HandwrittenQuality:
    """parse -> run_fan_out(assess) -> run_synthesis -> report, as a user writes it."""

    @workflow.run
    async def run(self, params: dict[str, Any]) -> dict[str, Any]:
        parsed = await baton.run_step(seed.parse_doc, {"text": params["text"]}, name="parse")
        by_model = await multi_model.run_fan_out(
            seed.assess,
            base="assess",
            models=params["models"],
            results={"parse": parsed},
            quorum=params.get("quorum"),
        )
        synthesis = await multi_model.run_synthesis(
            seed.synthesize_assessments, by_model, base="assess", all_models=params["models"]
        )
        final = await baton.run_step(
            seed.report, name="report", results={"assess_synthesis": synthesis}
        )
        return {"by_model": by_model, "synthesis": synthesis, "report": final}
