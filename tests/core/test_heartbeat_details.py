"""A step's own heartbeat details (a checkpoint) reach its next attempt, though the step's
keep-alive heartbeats (which carry no details) keep beating after them."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import activity
from temporalio.client import Client
from temporalio.common import RetryPolicy

import baton_temporal as baton


@baton.step(
    retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=200), maximum_attempts=2)
)
async def checkpoints(job: baton.Job) -> dict[str, Any]:
    """Attempt 1 notes its progress, outlives a few keep-alive beats, then fails."""
    if job.attempt == 1:
        activity.heartbeat({"done": 5})
        await asyncio.sleep(3.2)  # the keep-alive beats (every second) meanwhile
        raise RuntimeError("lost after its checkpoint")
    return {"seen": list(activity.info().heartbeat_details)}


async def test_the_keep_alive_keeps_a_steps_checkpoint(
    client: Client, task_queue: str, baton_worker: Any
) -> None:
    flow = baton.new(workflow_name="checkpoint").add(
        "work",
        checkpoints,
        {},
        options=baton.StepOptions(heartbeat_timeout=timedelta(seconds=3)),
    )
    async with baton_worker([checkpoints], ledger=False):
        result = await flow.run(client, task_queue=task_queue)
    assert result.steps["work"].attempt == 2
    assert result.results["work"] == {"seen": [{"done": 5}]}
