"""Steps for the cost-truth tests: concurrent calls, calls to scripted models."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio.common import RetryPolicy

import baton_temporal as baton

ONE_TRY = RetryPolicy(maximum_attempts=1)
TWO_TRIES = RetryPolicy(initial_interval=timedelta(milliseconds=100), maximum_attempts=2)


def _prompt(job: baton.Job, i: int) -> list[dict]:
    return [{"role": "user", "content": f"{job.workflow_id} {job.step} call {i}"}]


@baton.step(retry_policy=ONE_TRY)
async def ask_concurrently(job: baton.Job) -> dict:
    """args: model, calls. All calls at once, in one attempt (asyncio.gather)."""
    n = job.args["calls"]
    replies = await asyncio.gather(
        *(baton.call_llm(job, _prompt(job, i), model=job.args["model"]) for i in range(n))
    )
    return {"texts": [r.text for r in replies]}


@baton.step(retry_policy=ONE_TRY)
async def ask_each(job: baton.Job) -> dict:
    """args: models. One call to each, one after the other."""
    for i, model in enumerate(job.args["models"]):
        await baton.call_llm(job, _prompt(job, i), model=model)
    return {"done": len(job.args["models"])}


@baton.step(retry_policy=TWO_TRIES)
async def ask_once(job: baton.Job) -> dict:
    """args: model. One call; the reply may be scripted to be unusable."""
    reply = await baton.call_llm(job, _prompt(job, 0), model=job.args["model"])
    return {"text": reply.text}


@baton.step(retry_policy=ONE_TRY)
async def ask_all_at_once(job: baton.Job) -> dict:
    """args: models. One call to each, all at once (asyncio.gather): one refused call
    fails the attempt while the others are still out."""
    calls = [
        baton.call_llm(job, _prompt(job, i), model=model)
        for i, model in enumerate(job.args["models"])
    ]
    return {"texts": [r.text for r in await asyncio.gather(*calls)]}


# Replies kept across attempts by reuse_reply (per workflow id).
_KEPT: dict[str, baton.LLMResponse] = {}


@baton.step(retry_policy=TWO_TRIES)
async def reuse_reply(job: baton.Job) -> dict:
    """Attempt 1 calls and fails; attempt 2 reuses attempt 1's reply and reports its
    usage object (reply.usage) in llm_usage."""
    if job.workflow_id not in _KEPT:
        _KEPT[job.workflow_id] = await baton.call_llm(job, _prompt(job, 0), model="gpt-4o")
        raise RuntimeError("failed after the call")
    reply = _KEPT.pop(job.workflow_id)
    return {"text": reply.text, "llm_usage": [reply.usage]}


COST_STEPS = [ask_concurrently, ask_each, ask_once, ask_all_at_once, reuse_reply]
