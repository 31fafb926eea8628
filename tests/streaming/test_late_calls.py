"""An LLM call in a plain activity (no step keep-alive) whose attempt started late.

The call's own heartbeats are all that keep the activity alive; the first one must come
by two thirds of the heartbeat timeout after Temporal started the attempt, not a beat
interval after the call began. Attempt 1 is held back by an activity interceptor (see
tests/core/test_late_start.py); server, timeouts, SDK clients and stand-in are real.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.common import RetryPolicy
from temporalio.worker import Worker

from baton_temporal.llm import LLMConfig, complete
from baton_temporal.testing import StandIn
from tests.core.test_late_start import HoldFirstAttempt

MODEL = "claude-sonnet-4-20250514"
HEARTBEAT = timedelta(seconds=12)


@activity.defn(name="call_late")
async def call_late(args: dict) -> dict:
    config = LLMConfig(
        anthropic_api_key="sk-ant-standin-not-a-real-key",
        anthropic_base_url=args["base_url"],
        timeout_s=30,
    )
    prompt = [{"role": "user", "content": "answer when you can"}]
    reply = await complete(prompt, model=MODEL, stream=args["stream"], config=config)
    return {"chars": len(reply.text), "attempt": activity.info().attempt}


@workflow.defn(sandboxed=False)
class CallLate:
    @workflow.run
    async def run(self, args: dict) -> dict:
        return await workflow.execute_activity(
            call_late,
            args,
            start_to_close_timeout=timedelta(seconds=90),
            heartbeat_timeout=HEARTBEAT,
            retry_policy=RetryPolicy(maximum_attempts=2),
        )


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
async def test_a_call_in_a_late_attempt_beats_in_time(
    client: Client, task_queue: str, standin: StandIn, stream: bool
) -> None:
    # 9 s late, a 12 s heartbeat timeout, a reply (or response head) after 6 s: a first
    # beat 4 s after the call began (13 s) would miss the deadline and the call would be
    # sent, and billed, twice.
    standin.set_latency(6.0, MODEL)
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[CallLate],
        activities=[call_late],
        interceptors=[HoldFirstAttempt(9)],
    ):
        out = await client.execute_workflow(
            CallLate.run,
            {"base_url": standin.url, "stream": stream},
            id=f"late-call-{task_queue}",
            task_queue=task_queue,
        )
    assert out["attempt"] == 1 and out["chars"] > 0
    assert standin.billed_calls() == 1
