"""Steps of the streaming tests: one model call with a short heartbeat timeout."""

from __future__ import annotations

from datetime import timedelta

from temporalio.common import RetryPolicy

import baton_temporal as baton

QUICK_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    backoff_coefficient=1.0,
    maximum_attempts=3,
)
# Short, so that a stalled stream is noticed in a test's time; the stall limit is 80% of it.
HEARTBEAT_TIMEOUT = timedelta(seconds=2)


@baton.step(retry_policy=QUICK_RETRY, heartbeat_timeout=HEARTBEAT_TIMEOUT)
async def ask(job: baton.Job) -> dict:
    """One call (args: model, and call_llm params in ``params``)."""
    prompt = [{"role": "user", "content": f"{job.workflow_id} {job.step} please answer"}]
    reply = await baton.call_llm(job, prompt, model=job.args["model"], **job.args.get("params", {}))
    return {
        "chars": len(reply.text),
        "api": reply.api,
        "streamed": reply.streamed,
        "attempt": job.attempt,
        "items": len(reply.output_items),
    }


ALL = [ask]
