"""A step sent to a task queue that no worker polls ends the run instead of waiting for
ever: Temporal's schedule-to-start timeout bounds the wait for a worker to take it."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError

import baton_temporal as baton
from baton_temporal.workflow._runtime import ROUTED_QUEUE_WAIT


@baton.step
async def quick(job: baton.Job) -> dict:
    return {"ok": True}


async def _scheduled_waits(handle) -> list[float]:
    """Each scheduled activity's schedule-to-start timeout in seconds (0: none)."""
    history = await handle.fetch_history()
    return [
        e.activity_task_scheduled_event_attributes.schedule_to_start_timeout.ToTimedelta().total_seconds()
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]


async def test_a_queue_no_worker_polls_fails_the_step_with_the_fix(
    client: Client, task_queue: str, baton_worker
) -> None:
    nobody = f"nobody-polls-{uuid.uuid4().hex[:8]}"
    flow = baton.new(workflow_name="routed").add(
        "lost",
        quick,
        options=baton.StepOptions(
            task_queue=nobody, schedule_to_start_timeout=timedelta(seconds=2)
        ),
    )
    async with baton_worker([quick]):
        handle = await flow.start(client, task_queue=task_queue)
        began = time.monotonic()
        with pytest.raises(WorkflowFailureError) as failed:
            await handle.result()
    assert time.monotonic() - began < 30
    assert (await handle.describe()).status == WorkflowExecutionStatus.FAILED
    message = str(failed.value.cause)
    assert "no worker took it from its task queue" in message
    assert "start a worker that polls that queue" in message
    assert await _scheduled_waits(handle) == [2.0]


async def test_routed_steps_get_a_bounded_wait_by_default_and_local_ones_none(
    client: Client, task_queue: str, baton_worker
) -> None:
    # Routed to a queue the same worker does not poll, with no explicit bound: the
    # scheduled activity carries the default bound (the run is cancelled after that).
    elsewhere = f"elsewhere-{uuid.uuid4().hex[:8]}"
    flow = (
        baton.new(workflow_name="routed")
        .add("here", quick)
        .add("there", quick, deps=["here"], task_queue=elsewhere)
    )
    async with baton_worker([quick]):
        handle = await flow.start(client, task_queue=task_queue)
        deadline = time.monotonic() + 20
        waits: list[float] = []
        while time.monotonic() < deadline and len(waits) < 2:
            waits = await _scheduled_waits(handle)
        await handle.cancel()
    assert waits == [0.0, ROUTED_QUEUE_WAIT.total_seconds()]


def test_the_bound_round_trips_through_flow_json() -> None:
    flow = baton.new(workflow_name="routed").add(
        "a", quick, options=baton.StepOptions(schedule_to_start_timeout=timedelta(seconds=90))
    )
    again = baton.Flow.from_json(flow.to_json())
    assert again.node("a").options["schedule_to_start_timeout"] == 90.0
    with pytest.raises(baton.FlowError, match="schedule_to_start_timeout"):
        baton.Flow.from_json(
            {
                "baton_flow": 1,
                "workflow_name": "w",
                "steps": [{"name": "a", "step": "a", "options": {"schedule_to_start_timeout": -1}}],
            }
        )
