"""Steps of the cost-page tests: two LLM calls on the stand-in, a step the test holds
open (to watch a state change live), and steps whose text is an attack."""

from __future__ import annotations

import asyncio

from temporalio import workflow

import baton_temporal as baton

# Set by the test to let `hold` finish.
RELEASE: dict[str, asyncio.Event] = {}
ATTACK = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>'


@baton.step
async def ask(job: baton.Job) -> dict:
    reply = await baton.call_llm(
        job, [{"role": "user", "content": "Rate this."}], model=job.args["workflow_model"]
    )
    return {"text": reply.text}


@baton.step
async def hold(job: baton.Job) -> dict:
    await RELEASE[job.workflow_id].wait()
    return {"released": True}


@baton.step
async def report(job: baton.Job) -> dict:
    return {"done": sorted(job.results)}


@baton.step
async def boom(job: baton.Job) -> dict:
    raise baton_error(ATTACK)


def baton_error(message: str) -> Exception:
    from temporalio.exceptions import ApplicationError

    return ApplicationError(message, non_retryable=True)


STEPS = [ask, hold, report, boom]


EVIL_STEP = '<img src=x onerror="window.__pwned=3">'


async def _evil(job: baton.Job) -> dict:
    return {"ok": True}


# A step registered under an attacker's activity name (Temporal allows any text there).
evil = baton.step(name=EVIL_STEP)(_evil)
STEPS.append(evil)


@workflow.defn(name="forged")
class Forged:
    """A hand-written workflow that answers ``baton.steps`` with whatever it likes."""

    def __init__(self) -> None:
        self._done = False

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: self._done)

    @workflow.signal
    def finish(self) -> None:
        self._done = True

    @workflow.query(name="baton.steps")
    def steps(self) -> dict:
        return {
            ATTACK: {"step": ATTACK, "state": "running", "attempt": 1, "model": ATTACK},
            "</table><h1>owned</h1>": {"step": "x", "state": "<b>failed</b>", "error": ATTACK},
        }
