"""Steps of the recorded scenarios. They must keep their names and behaviour: a history
recorded with them is replayed against the workflow code of every later release.

This module works against any release of baton_temporal (it uses only the public API),
so the same scenarios can be recorded from an older checkout.
"""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio.exceptions import ApplicationError

import baton_temporal as baton

try:  # this release
    from baton_temporal.examples import seed
except ImportError:  # release 527f01c and before shipped the seed app in workers/
    from workers.examples import seed  # type: ignore[no-redef]

__all__ = ["STEPS", "ask", "big", "broken", "echo", "flaky", "measure", "nap", "seed"]


@baton.step
async def echo(job: baton.Job) -> dict[str, Any]:
    """Returns its ``value`` arg and the names of the results it read."""
    return {"value": job.args.get("value"), "read": sorted(baton.get_all_results(job))}


@baton.step
async def flaky(job: baton.Job) -> dict[str, Any]:
    """Fails (retryably) until attempt ``succeed_on``."""
    if job.attempt < int(job.args.get("succeed_on", 1)):
        raise RuntimeError(f"flaky: attempt {job.attempt} fails on purpose")
    return {"attempt": job.attempt}


@baton.step
async def broken(job: baton.Job) -> dict[str, Any]:
    """Fails for good at once."""
    raise ApplicationError("broken on purpose", type="Broken", non_retryable=True)


@baton.step
async def big(job: baton.Job) -> dict[str, Any]:
    """A result of ``size`` bytes (over Temporal's 256 KB payload warning)."""
    return {"blob": "x" * int(job.args["size"])}


@baton.step
async def measure(job: baton.Job) -> dict[str, Any]:
    """The length of each upstream ``blob``."""
    return {name: len(r.get("blob", "")) for name, r in sorted(baton.get_all_results(job).items())}


@baton.step
async def ask(job: baton.Job) -> dict[str, Any]:
    """One LLM call through ``call_llm`` (usage goes to the ledger)."""
    reply = await baton.call_llm(
        job, [{"role": "user", "content": str(job.args["question"])}], model=job.args["model"]
    )
    return {"answer": reply.text}


@baton.step
async def nap(job: baton.Job) -> dict[str, Any]:
    """Sleeps ``seconds`` (a slow dependency: a quorum's straggler)."""
    await asyncio.sleep(float(job.args.get("seconds", 1)))
    return {"slept": job.args.get("seconds", 1)}


STEPS = [echo, flaky, broken, big, measure, ask, nap, *seed.STEPS]
