"""A step whose code starts long after Temporal started its attempt.

A worker that takes more activities than it can start at once (1,000 slots on two cores)
leaves them waiting in its event loop while the server's heartbeat clock runs; `make
bench-scale SLOTS=1000` measured 15-30 s. Here an activity interceptor holds the first
attempt back for a set time before the step's code runs; the server, its heartbeat
timeout and its retries are real.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import Client
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
    Worker,
)

import baton_temporal as baton
from baton_temporal.steps._step import first_beat_delay


@baton.step
async def runs_a_while(job: baton.Job) -> dict[str, Any]:
    """Notes each attempt that got to run its body, then works for a few seconds."""
    with Path(job.args["log"]).open("a") as log:
        log.write(f"{job.attempt}\n")
    await asyncio.sleep(float(job.args["work_s"]))
    return {"attempt": job.attempt}


class HoldFirstAttempt(Interceptor):
    """Holds the first attempt of every activity for ``seconds`` before it starts."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _Hold(next, self.seconds)


class _Hold(ActivityInboundInterceptor):
    def __init__(self, next: ActivityInboundInterceptor, seconds: float) -> None:
        super().__init__(next)
        self.seconds = seconds

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        if activity.info().attempt == 1:
            await asyncio.sleep(self.seconds)
        return await super().execute_activity(input)


class HoldFirstAttemptAlive(HoldFirstAttempt):
    """Holds the first attempt like :class:`HoldFirstAttempt`, but heartbeats meanwhile:
    the attempt starts later than its heartbeat timeout and is still Temporal's current
    one (as when the worker's clock runs ahead of the server's)."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _HoldAlive(next, self.seconds)


class _HoldAlive(ActivityInboundInterceptor):
    def __init__(self, next: ActivityInboundInterceptor, seconds: float) -> None:
        super().__init__(next)
        self.seconds = seconds

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        if activity.info().attempt == 1:
            for _ in range(int(self.seconds / 0.25)):
                activity.heartbeat()
                await asyncio.sleep(0.25)
        return await super().execute_activity(input)


async def _run(
    client: Client,
    task_queue: str,
    tmp_path: Path,
    *,
    hold_s: float,
    heartbeat_s: float,
    linger_s: float = 0,
    hold: type[HoldFirstAttempt] = HoldFirstAttempt,
) -> tuple[baton.FlowResult, list[str]]:
    log = tmp_path / "bodies.log"
    flow = baton.new(workflow_name="late").add(
        "late",
        runs_a_while,
        {"log": str(log), "work_s": heartbeat_s * 2 / 3},
        options=baton.StepOptions(heartbeat_timeout=timedelta(seconds=heartbeat_s)),
    )
    plugin = baton.BatonPlugin(steps=[runs_a_while], ledger=False)
    async with Worker(
        client,
        task_queue=task_queue,
        plugins=[plugin],
        interceptors=[hold(hold_s)],
    ):
        result = await flow.run(client, task_queue=task_queue)
        # Keep the worker up until a held-back attempt has had its chance to run.
        await asyncio.sleep(linger_s)
    return result, log.read_text().split()


async def test_a_step_that_starts_late_beats_at_once_and_keeps_its_attempt(
    client: Client, task_queue: str, tmp_path: Path
) -> None:
    # Started 9 s late with a 12 s heartbeat timeout: a first beat a third of the timeout
    # after the code starts (13 s) would come too late, and the step would be run again.
    result, bodies = await _run(client, task_queue, tmp_path, hold_s=9, heartbeat_s=12)
    assert result.steps["late"].attempt == 1
    assert bodies == ["1"]


async def test_an_attempt_already_timed_out_does_not_run_its_body(
    client: Client, task_queue: str, tmp_path: Path
) -> None:
    # Started 10 s late with a 6 s heartbeat timeout: Temporal has already timed attempt 1
    # out and run attempt 2. Attempt 1 learns it from its first heartbeat and stops
    # before its body, which would otherwise run (and bill its LLM calls) a second time.
    result, bodies = await _run(client, task_queue, tmp_path, hold_s=10, heartbeat_s=6, linger_s=5)
    assert result.steps["late"].attempt == 2
    assert bodies == ["2"]


async def test_a_late_attempt_that_is_still_current_runs_its_body_once(
    client: Client, task_queue: str, tmp_path: Path
) -> None:
    # Started 3.5 s late with a 3 s heartbeat timeout, but kept alive meanwhile: the
    # check before the body hears no "not found" and must not give the attempt up.
    result, bodies = await _run(
        client, task_queue, tmp_path, hold_s=3.5, heartbeat_s=3, hold=HoldFirstAttemptAlive
    )
    assert result.steps["late"].attempt == 1
    assert bodies == ["1"]


@pytest.mark.parametrize("timeout_s", [0.12, 0.15, 0.2, 0.29, 0.3, 1.0, 12.0, 30.0])
def test_the_first_beat_is_due_by_two_thirds_of_the_timeout_for_any_lag(timeout_s: float) -> None:
    # Temporal's deadline for the first beat is the whole timeout after it started the
    # attempt; the beat leaves by two thirds of it, whatever the lag, so that it has a
    # third of the timeout to get there. Below 0.3 s the beat interval is held at 0.1 s,
    # which must not push the first beat past the deadline.
    timeout = timedelta(seconds=timeout_s)
    for hundredths in range(0, 150):
        lag = timeout_s * hundredths / 100
        first = first_beat_delay(timeout, lag)
        assert first >= 0
        assert lag + first <= timeout_s * 2 / 3 + 1e-9 or first == 0, (lag, first)
    # A step that starts on time sleeps a third of the timeout first (no beat for short
    # steps), and one that starts past two thirds beats at once.
    assert first_beat_delay(timeout, 0) == pytest.approx(
        min(max(timeout_s / 3, 0.1), timeout_s * 2 / 3)
    )
    assert first_beat_delay(timeout, timeout_s * 0.7) == 0


async def test_a_step_unit_tested_with_activity_environment_is_not_held_as_late(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # temporalio's ActivityEnvironment says the attempt started in 1970: not a late start
    # to check for 5 s before the body, as it would be with that date taken at face value.
    import dataclasses
    import logging

    from temporalio.testing import ActivityEnvironment

    from baton_temporal.workflow._wire import StepInput

    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, heartbeat_timeout=timedelta(seconds=30))
    log = tmp_path / "bodies.log"
    with caplog.at_level(logging.INFO, logger="baton_temporal"):
        out = await env.run(
            runs_a_while.activity,
            StepInput(step="late", args={"log": str(log), "work_s": 0}),
        )
    assert out.result == {"attempt": 1}
    assert log.read_text().split() == ["1"]
    assert not [r for r in caplog.records if "still current" in r.getMessage()]
