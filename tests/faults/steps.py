"""Steps for the in-process fault tests (provider faults, ledger outages)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio.common import RetryPolicy

import baton_temporal as baton

# Fast retries, and few of them: a fault test must end quickly either way.
QUICK_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    backoff_coefficient=1.5,
    maximum_interval=timedelta(seconds=2),
    maximum_attempts=4,
)

# Set by the tests that need a step to wait for them (see ``ask_then_fail``).
GATES: dict[str, asyncio.Event] = {}
ARRIVED: dict[str, asyncio.Event] = {}


def _prompt(job: baton.Job) -> list[dict]:
    return [{"role": "user", "content": f"{job.workflow_id} {job.step} attempt {job.attempt}"}]


@baton.step(retry_policy=QUICK_RETRY)
async def ask(job: baton.Job) -> dict:
    """One model call (args: model, and LLM params in ``params``)."""
    reply = await baton.call_llm(
        job, _prompt(job), model=job.args["model"], **job.args.get("params", {})
    )
    return {"text": reply.text, "attempt": job.attempt}


@baton.step(retry_policy=QUICK_RETRY)
async def ask_then_fail(job: baton.Job) -> dict:
    """Calls the model, then raises on the attempts before ``args['succeed_on']`` (never
    succeeds when it is 0). From attempt 2 on it first waits at the gate named
    ``args['gate']``, when there is one, so that a test can change the world (stop or
    start the ledger) between attempts; attempt ``args['hang_on']`` hangs until it times
    out."""
    gate = job.args.get("gate")
    if gate and job.attempt >= 2:
        ARRIVED[gate].set()
        await GATES[gate].wait()
    if job.attempt == job.args.get("hang_on"):
        await asyncio.sleep(3600)  # until Temporal times this attempt out
    await baton.call_llm(job, _prompt(job), model=job.args["model"])
    succeed_on = job.args.get("succeed_on", 0)
    if not succeed_on or job.attempt < succeed_on:
        raise RuntimeError(f"step broke after calling the model (attempt {job.attempt})")
    return {"ok": True, "attempt": job.attempt}


ALL = [ask, ask_then_fail]
