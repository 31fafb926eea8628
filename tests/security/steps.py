"""Steps for the security tests: they carry a planted secret through every kind of
payload (arguments, model calls, results, failure messages)."""

from __future__ import annotations

from datetime import timedelta

from temporalio.common import RetryPolicy

import baton_temporal as baton

ONCE = RetryPolicy(maximum_attempts=1)


@baton.step
async def echo_prompt(job: baton.Job) -> dict:
    """Sends ``args['secret']`` to the model and returns it with the reply."""
    secret = job.args["secret"]
    reply = await baton.call_llm(
        job, [{"role": "user", "content": f"Summarise: {secret}"}], model="gpt-4o"
    )
    return {"prompt": secret, "reply": reply.text}


@baton.step
async def quote_upstream(job: baton.Job) -> dict:
    """Reads its dependency's result (the secret travels in the step's input)."""
    return {"quoted": baton.get_result(job, "ask")["prompt"]}


@baton.step(retry_policy=ONCE, start_to_close_timeout=timedelta(seconds=30))
async def fail_with_secret(job: baton.Job) -> dict:
    raise RuntimeError(f"could not handle {job.args['secret']}")


ALL = [echo_prompt, quote_upstream, fail_with_secret]
