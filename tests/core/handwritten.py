"""The diamond flow written by hand as a @workflow.defn with baton's helpers."""

from __future__ import annotations

import asyncio

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    import baton_temporal as baton

    from .steps import sync_timed, timed


@workflow.defn
class HandwrittenBrief:
    @workflow.run
    async def run(self, url: str) -> dict:
        fetch = await baton.run_step(timed, {"url": url}, name="fetch", summary="fetch the page")
        after_fetch = {"fetch": fetch}
        summarize, keywords, credibility = await asyncio.gather(
            baton.run_step(timed, {"sleep": 0.5}, name="summarize", results=after_fetch),
            baton.run_step(sync_timed, {"sleep": 0.5}, name="keywords", results=after_fetch),
            baton.run_step(timed, {"sleep": 0.5}, name="credibility", results=after_fetch),
        )
        middle = {"summarize": summarize, "keywords": keywords, "credibility": credibility}
        compiled = await baton.run_step(timed, name="compile", results=middle)
        return {"fetch": fetch, **middle, "compile": compiled}
