"""Steps that call models through call_llm (and report usage by hand) for ledger tests."""

from __future__ import annotations

from datetime import timedelta

from temporalio.common import RetryPolicy

import baton_temporal as baton

FAST_RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=100), maximum_attempts=5)


def _prompt(job: baton.Job, i: int = 0) -> list[dict]:
    return [{"role": "user", "content": f"{job.workflow_id} {job.step} call {i}"}]


@baton.step(retry_policy=FAST_RETRY)
async def ask(job: baton.Job) -> dict:
    """args: model, calls (default 1)."""
    texts = []
    for i in range(job.args.get("calls", 1)):
        reply = await baton.call_llm(job, _prompt(job, i), model=job.args.get("model"))
        texts.append(reply.text)
    return {"texts": texts}


@baton.step(retry_policy=FAST_RETRY)
async def ask_then_fail(job: baton.Job) -> dict:
    """Calls the model, then fails until attempt args['succeed_on'] (never if 0)."""
    await baton.call_llm(job, _prompt(job), model=job.args["model"])
    succeed_on = job.args.get("succeed_on", 0)
    if not succeed_on or job.attempt < succeed_on:
        raise RuntimeError(f"step broke after calling the model (attempt {job.attempt})")
    return {"ok": True}


@baton.step
async def ask_and_report(job: baton.Job) -> dict:
    """Returns its call's usage in llm_usage too (both ways: must count once), plus one
    usage of a call made outside call_llm (must count)."""
    reply = await baton.call_llm(job, _prompt(job), model=job.args["model"])
    copied = {
        "model": reply.usage.model,
        "input_tokens": reply.usage.input_tokens,
        "output_tokens": reply.usage.output_tokens,
    }
    other = {"model": "gpt-4o", "input_tokens": 1000, "output_tokens": 100, "latency_ms": 5}
    # "dump": the usage object itself (with its call id); else the numbers copied by hand.
    usage = [reply.usage.model_dump(), other] if job.args.get("how") == "dump" else [copied, other]
    return {"text": reply.text, "llm_usage": usage}


@baton.step
async def reported_only(job: baton.Job) -> dict:
    """No call_llm: the seed's way, usage in the result."""
    return {
        "answer": 42,
        "llm_usage": {
            "model": "claude-sonnet-4-20250514",
            "input_tokens": 1200,
            "output_tokens": 300,
            "cache_read_tokens": 1000,
            "latency_ms": 900,
        },
    }


@baton.step
async def bad_usage(job: baton.Job) -> dict:
    await baton.call_llm(job, _prompt(job), model="gpt-4o")
    return {"llm_usage": {"model": "gpt-4o", "input_tokens": -5, "output_tokens": "many"}}


ALL = [ask, ask_then_fail, ask_and_report, reported_only, bad_usage]
