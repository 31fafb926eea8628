"""Steps for the tracing and console tests."""

from __future__ import annotations

from datetime import timedelta

from temporalio.common import RetryPolicy

import baton_temporal as baton

FAST_RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=50), maximum_attempts=3)


@baton.step(retry_policy=FAST_RETRY)
async def parse(job: baton.Job) -> dict:
    return {"words": len(str(job.args.get("text", "")).split())}


@baton.step(retry_policy=FAST_RETRY)
async def ask(job: baton.Job) -> dict:
    """args: model, calls (default 1), prompt."""
    texts = []
    for i in range(job.args.get("calls", 1)):
        prompt = f"{job.args.get('prompt', 'say hi')} ({i})"
        reply = await baton.call_llm(
            job, [{"role": "user", "content": prompt}], model=job.args["model"], max_tokens=50
        )
        texts.append(reply.text)
    return {"texts": texts}


@baton.step(retry_policy=FAST_RETRY)
async def explode(job: baton.Job) -> dict:
    raise ValueError(f"cannot read the document (attempt {job.attempt})")


ALL = [parse, ask, explode]


@baton.step(retry_policy=RetryPolicy(maximum_attempts=1))
async def scramble(job: baton.Job) -> dict:
    """Fails with terminal control sequences in its message (a model's reply, say)."""
    raise ValueError("reply was \x1b[2J\x1b]0;owned\x07 \u202egnp.exe")


ALL.append(scramble)
