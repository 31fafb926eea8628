"""A hand-written workflow that fans out in batch mode (run_fan_out(batch=...))."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from baton_temporal import multi_model

    from .steps import assess_doc

FAST = multi_model.BatchOptions(
    poll_interval=timedelta(milliseconds=300), max_poll_interval=timedelta(seconds=1)
)


@workflow.defn
class BatchBrief:
    @workflow.run
    async def run(self, text: str) -> dict:
        by_model = await multi_model.run_fan_out(
            assess_doc,
            base="assess",
            models=["claude-sonnet-4-20250514", "gpt-4o"],
            args={"text": text},
            quorum=1,
            batch=FAST,
        )
        return {model: result["score"] for model, result in by_model.items()}


@workflow.defn
class BatchAny:
    """Fans out to the given models in batch mode; returns each model's score."""

    @workflow.run
    async def run(self, models: list[str]) -> dict:
        by_model = await multi_model.run_fan_out(
            assess_doc, base="assess", models=models, args={"text": "memo"}, batch=FAST
        )
        return {model: result["score"] for model, result in by_model.items()}
