"""Steps for the quorum tests: models with per-model latency that say when they were
cancelled, a sync model that ignores cancellation, and a model that bills a call and then
hangs on a second one."""

from __future__ import annotations

import asyncio
import threading
import time

from temporalio import workflow
from temporalio.common import RetryPolicy

import baton_temporal as baton
from baton_temporal import multi_model

# What the activities saw, by step name (the worker runs in the test's process).
CANCELLED: dict[str, float] = {}
FINISHED: dict[str, float] = {}
THREAD_DONE: dict[str, threading.Event] = {}

ONE_TRY = RetryPolicy(maximum_attempts=1)


@baton.step(retry_policy=ONE_TRY)
async def timed_assess(job: baton.Job) -> dict:
    """Sleeps ``args["sleep"][model]`` seconds (default 0); fails if the model is in
    ``args["down"]``."""
    model = multi_model.model_for(job, "none")
    if model in job.args.get("down", []):
        raise RuntimeError(f"provider of {model} is down")
    start = time.time()
    try:
        await asyncio.sleep(job.args.get("sleep", {}).get(model, 0))
    except asyncio.CancelledError:
        CANCELLED[job.step] = time.time()
        raise
    FINISHED[job.step] = time.time()
    return {"model": model, "score": len(model), "start": start, "end": time.time()}


@baton.step(retry_policy=ONE_TRY)
def sync_assess(job: baton.Job) -> dict:
    """A blocking step (run in a thread): it cannot be interrupted by a cancellation."""
    model = multi_model.model_for(job, "none")
    done = THREAD_DONE.setdefault(job.step, threading.Event())
    time.sleep(job.args.get("sleep", {}).get(model, 0))
    done.set()
    return {"model": model, "score": len(model)}


@baton.step(retry_policy=ONE_TRY)
async def ask_twice(job: baton.Job) -> dict:
    """One billed call, then a second one (which the stand-in may make slow)."""
    model = multi_model.model_for(job, "none")
    first = await baton.call_llm(job, [{"role": "user", "content": f"{job.step} first"}])
    try:
        second = await baton.call_llm(job, [{"role": "user", "content": f"{job.step} second"}])
    except asyncio.CancelledError:
        CANCELLED[job.step] = time.time()
        raise
    return {"model": model, "texts": [first.text, second.text]}


@baton.step
async def synthesize(job: baton.Job) -> dict:
    by_model = multi_model.collect_fan_results(job)
    return {"models": sorted(by_model), "at": time.time()}


@baton.step
async def audit(job: baton.Job) -> dict:
    return {"saw": sorted(baton.get_all_results(job))}


STEPS = [timed_assess, sync_assess, ask_twice, synthesize, audit]


@workflow.defn
class QuorumByHand:
    """run_fan_out with a quorum, then (optionally) the stragglers' results."""

    @workflow.run
    async def run(self, params: dict) -> dict:
        by_model = await multi_model.run_fan_out(
            timed_assess,
            base="assess",
            models=params["models"],
            args=params.get("args"),
            quorum=params["quorum"],
            cancel_stragglers=params.get("cancel", True),
        )
        out = {
            "quorum": sorted(by_model),
            "stragglers": getattr(by_model, "stragglers", None),
            "at": workflow.now().timestamp(),
        }
        if not params.get("cancel", True):
            out["all"] = sorted(await by_model.finish())  # type: ignore[attr-defined]
        return out
