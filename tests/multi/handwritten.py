"""The seed's fan-out pipeline written by hand with the multi-model helpers."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    import baton_temporal as baton
    from baton_temporal import multi_model

    from .steps import assess, parse_doc, report, synthesize_assessments

MODELS = ["claude-sonnet-4-20250514", "claude-opus-4-20250514", "gpt-4o"]


@workflow.defn
class HandwrittenQuality:
    @workflow.run
    async def run(self, text: str) -> dict:
        parsed = await baton.run_step(parse_doc, {"text": text}, name="parse")
        by_model = await multi_model.run_fan_out(
            assess,
            base="assess",
            models=MODELS,
            args={"doc_id": "doc-123", "sleep": 0.3},
            results={"parse": parsed},
        )
        synthesis = await multi_model.run_synthesis(
            synthesize_assessments, by_model, base="assess", model="claude-opus-4-20250514"
        )
        final = await baton.run_step(report, name="report", results={"assess_synthesis": synthesis})
        return {"by_model": by_model, "synthesis": synthesis, "report": final}
