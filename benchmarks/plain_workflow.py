"""Comparator 3: the seed pipeline as a plain temporalio workflow.

Imports nothing but temporalio and the standard library; activities are called by name
(they are registered from :mod:`benchmarks.plain`). Same timeouts and retry policy as a
baton step's defaults.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy

_OPTIONS: dict[str, Any] = {
    "start_to_close_timeout": timedelta(minutes=10),
    "retry_policy": RetryPolicy(
        initial_interval=timedelta(seconds=1),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(seconds=60),
        maximum_attempts=10,
    ),
}


@workflow.defn(name="bench.PlainSeed")
class PlainSeed:
    @workflow.run
    async def run(self, req: dict[str, Any]) -> dict[str, Any]:
        parsed = await workflow.execute_activity(
            "plain_parse", {"text": req["text"], "doc_id": req["doc_id"]}, **_OPTIONS
        )
        models: list[str] = req["models"]
        limit = asyncio.Semaphore(req["max_concurrency"]) if req.get("max_concurrency") else None

        async def one(model: str) -> Any:
            arg = {"model": model, "doc_id": req["doc_id"], "parsed": parsed}
            if limit is None:
                return await workflow.execute_activity("plain_assess", arg, **_OPTIONS)
            async with limit:
                return await workflow.execute_activity("plain_assess", arg, **_OPTIONS)

        verdicts = await asyncio.gather(*(one(m) for m in models))
        by_model = dict(zip(models, verdicts, strict=True))
        synthesis = await workflow.execute_activity(
            "plain_synthesize", {"model": req["synthesize_model"], "by_model": by_model}, **_OPTIONS
        )
        report = await workflow.execute_activity(
            "plain_report", {"synthesis": synthesis}, **_OPTIONS
        )
        return {"parse": parsed, "assess": by_model, "synthesis": synthesis, "report": report}
