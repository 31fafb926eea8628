"""Steps of the rolling-deploy tests: the old release has ``first``; the new one adds
``added`` (its policy allows two attempts; it fails its first run) and ``broken``
(three attempts, all fail). RUNS counts their runs by workflow id (the new worker runs
in the test's process)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

import baton_temporal as baton


@baton.step
async def first(job: baton.Job) -> dict:
    return {"n": 1}


@baton.step(
    retry_policy=RetryPolicy(maximum_attempts=2, initial_interval=timedelta(milliseconds=100))
)
async def added(job: baton.Job) -> dict:
    RUNS[job.workflow_id] = runs = RUNS.get(job.workflow_id, 0) + 1
    if runs == 1:
        raise RuntimeError("the first run of 'added' fails on purpose")
    return {"runs": runs, "saw": job.results.get("first")}


@baton.step(
    retry_policy=RetryPolicy(maximum_attempts=3, initial_interval=timedelta(milliseconds=100))
)
async def broken(job: baton.Job) -> dict:
    RUNS[job.workflow_id] = RUNS.get(job.workflow_id, 0) + 1
    raise RuntimeError("'broken' always fails")


RUNS: dict[str, int] = {}
OLD = [first]
NEW = [first, added, broken]


@workflow.defn
class RunsOneStep:
    """A hand-written workflow that runs one step by name."""

    @workflow.run
    async def run(self, step: str) -> dict:
        return await baton.run_step(step, name=step)
