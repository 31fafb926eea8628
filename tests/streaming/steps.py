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
HEARTBEAT_TIMEOUT = timedelta(seconds=3)
PLAIN_HEARTBEAT_TIMEOUT = timedelta(seconds=2)


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


# ---- a plain activity (no @baton.step keep-alive): only the stream's own heartbeats ----

import anthropic  # noqa: E402,F401  (loaded before any activity runs, as a worker would)
from temporalio import activity, workflow  # noqa: E402

from baton_temporal.llm import LLMConfig, complete  # noqa: E402


@activity.defn(name="stream_plainly")
async def stream_plainly(base_url: str) -> dict:
    config = LLMConfig(
        anthropic_api_key="sk-ant-standin-not-a-real-key",
        anthropic_base_url=base_url,
        timeout_s=30,
    )
    prompt = [{"role": "user", "content": "stream please"}]
    reply = await complete(prompt, model="claude-sonnet-4-20250514", stream=True, config=config)
    return {"chars": len(reply.text), "attempt": activity.info().attempt}


@workflow.defn(sandboxed=False)
class StreamPlainly:
    """Runs ``stream_plainly`` once with a 2 s heartbeat timeout and no retry."""

    @workflow.run
    async def run(self, base_url: str) -> dict:
        return await workflow.execute_activity(
            stream_plainly,
            base_url,
            start_to_close_timeout=timedelta(seconds=60),
            heartbeat_timeout=PLAIN_HEARTBEAT_TIMEOUT,
            retry_policy=RetryPolicy(maximum_attempts=1),
        )
