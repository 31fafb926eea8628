"""Comparator 2: the seed pipeline hand-written with baton's helpers."""

from __future__ import annotations

from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    import baton_temporal as baton
    from baton_temporal import multi_model
    from workers.examples import seed


@workflow.defn(name="bench.HandwrittenSeed")
class HandwrittenSeed:
    @workflow.run
    async def run(self, req: dict[str, Any]) -> dict[str, Any]:
        parsed = await baton.run_step(
            seed.parse_doc, {"text": req["text"], "doc_id": req["doc_id"]}, name="parse"
        )
        by_model = await multi_model.run_fan_out(
            seed.assess,
            base="assess",
            models=req["models"],
            args={"doc_id": req["doc_id"]},
            results={"parse": parsed},
        )
        synthesis = await multi_model.run_synthesis(
            seed.synthesize_assessments, by_model, base="assess", model=req["synthesize_model"]
        )
        report = await baton.run_step(
            seed.report, name="report", results={"assess_synthesis": synthesis}
        )
        return {"parse": parsed, "assess": by_model, "synthesis": synthesis, "report": report}
