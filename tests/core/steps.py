"""Steps used by the core tests. Importable by worker subprocesses (BATON_STEPS)."""

from __future__ import annotations

import asyncio
import os
import time
from datetime import timedelta
from pathlib import Path

from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

import baton_temporal as baton


def _log(job: baton.Job, event: str) -> None:
    """Append an execution event to $BATON_TEST_LOG (for counting executions across
    worker processes)."""
    path = os.environ.get("BATON_TEST_LOG") or job.args.get("log")
    if path:
        with Path(path).open("a") as f:
            f.write(f"{job.workflow_id} {job.step} {event} {job.attempt}\n")


@baton.step
async def timed(job: baton.Job) -> dict:
    """Sleeps args['sleep'] seconds; returns when it ran and which results it saw."""
    start = time.time()
    await asyncio.sleep(job.args.get("sleep", 0))
    return {
        "step": job.step,
        "start": start,
        "end": time.time(),
        "saw": sorted(job.results),
        "value": job.args.get("value", job.step),
    }


@baton.step
def sync_timed(job: baton.Job) -> dict:
    """The same as ``timed``, as a blocking function (run in a thread)."""
    start = time.time()
    time.sleep(job.args.get("sleep", 0))
    return {"step": job.step, "start": start, "end": time.time(), "saw": sorted(job.results)}


@baton.step(
    retry_policy=RetryPolicy(maximum_attempts=2, initial_interval=timedelta(milliseconds=50))
)
async def broken(job: baton.Job) -> dict:
    raise ValueError(f"{job.step} is broken on purpose")


@baton.step(retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=50)))
async def flaky(job: baton.Job) -> dict:
    """Fails its first ``args['fail_times']`` attempts, then succeeds."""
    if job.attempt <= job.args.get("fail_times", 1):
        raise RuntimeError(f"transient failure on attempt {job.attempt}")
    return {"attempt": job.attempt}


@baton.step
async def peeker(job: baton.Job) -> dict:
    """Asks for a result it does not depend on."""
    return {"x": baton.get_result(job, job.args["peek"])}


@baton.step
async def not_a_dict(job: baton.Job) -> dict:
    return [1, 2, 3]  # type: ignore[return-value]


@baton.step
async def rejects(job: baton.Job) -> dict:
    raise ApplicationError("input can never work", non_retryable=True)


@baton.step(heartbeat_timeout=timedelta(seconds=2))
async def logged(job: baton.Job) -> dict:
    """Logs start and finish; sleeps args['sleep'] seconds. It does not heartbeat itself:
    the step wrapper does, so a killed worker is noticed within the heartbeat timeout."""
    _log(job, "start")
    await asyncio.sleep(job.args.get("sleep", 0))
    _log(job, "done")
    return {"step": job.step, "saw": sorted(job.results)}


ALL = [timed, sync_timed, broken, flaky, peeker, not_a_dict, rejects, logged]
