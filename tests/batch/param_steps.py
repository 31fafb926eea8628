"""Steps of the batch tests that pass a direct call's transport options (stream=, api=)."""

from __future__ import annotations

import asyncio

import baton_temporal as baton
from baton_temporal import multi_model


@baton.step
async def streamed_ask(job: baton.Job) -> dict:
    # stream= and stall_timeout= are how a direct call travels; a batch has no stream.
    reply = await baton.call_llm(
        job,
        [{"role": "user", "content": "Score this memo."}],
        model=multi_model.model_for(job, "gpt-4o"),
        stream=True,
        stall_timeout=60,
        max_tokens=40,
    )
    return {"text": reply.text, "tier": reply.usage.service_tier}


@baton.step
async def responses_ask(job: baton.Job) -> dict:
    reply = await baton.call_llm(
        job,
        [{"role": "user", "content": "Score this memo."}],
        model=multi_model.model_for(job, "gpt-4o"),
        api="responses",
    )
    return {"text": reply.text}


PARAM_STEPS = [streamed_ask, responses_ask]


@baton.step
async def gathered_leniently(job: baton.Job) -> dict:
    # return_exceptions=True hands call_llm's BatchDeferred back as a value: the step
    # must still be batched, not finish with what it made of that value.
    model = multi_model.model_for(job, "gpt-4o")
    replies = await asyncio.gather(
        baton.call_llm(job, [{"role": "user", "content": "one"}], model=model),
        baton.call_llm(job, [{"role": "user", "content": "two"}], model=model),
        return_exceptions=True,
    )
    return {"texts": [getattr(r, "text", None) for r in replies]}


@baton.step
async def fails_on_deferred(job: baton.Job) -> dict:
    model = multi_model.model_for(job, "gpt-4o")
    (reply,) = await asyncio.gather(
        baton.call_llm(job, [{"role": "user", "content": "one"}], model=model),
        return_exceptions=True,
    )
    return {"text": reply.text}  # AttributeError on the deferral: still batched


PARAM_STEPS += [gathered_leniently, fails_on_deferred]
