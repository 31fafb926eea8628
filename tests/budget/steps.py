"""Steps for the budget tests: each asks a model through call_llm, priced by a table."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from temporalio.common import RetryPolicy

import baton_temporal as baton
from baton_temporal import multi_model
from baton_temporal.pricing import TablePricer

FAST_RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=100), maximum_attempts=5)

SONNET, OPUS, HAIKU = (
    "claude-sonnet-4-20250514",
    "claude-opus-4-20250514",
    "claude-3-5-haiku-20241022",
)
# Dear prices, so that each call costs about a dollar and the figures read plainly:
# 100 output tokens at $10,000 per million are $1.00.
DEAR = {"input": "1000", "output": "10000"}
PRICES = TablePricer({m: DEAR for m in (SONNET, OPUS, HAIKU, "gpt-4o")})
# The same, plus a price for a self-hosted model: the opt-in that lets it run under a cap.
WITH_PRIVATE = TablePricer({m: DEAR for m in (SONNET, "my-private-model-7")})
MAX_TOKENS = 100
OUTPUT_USD = Decimal(MAX_TOKENS) * 10000 / 1_000_000  # $1.00 per call at max_tokens


def long_answer(model: str, messages: list) -> str:
    """Always longer than max_tokens: every reply costs its full output allowance."""
    return "word " * 2000


def prompt(job: baton.Job, i: int = 0) -> list[dict]:
    return [{"role": "user", "content": f"{job.step} call {i}"}]


@baton.step(retry_policy=FAST_RETRY)
async def ask(job: baton.Job) -> dict:
    """args: model (default: the fan-out's), calls (default 1), max_tokens (default 100;
    None: not passed)."""
    params = {}
    if job.args.get("max_tokens", MAX_TOKENS) is not None:
        params["max_tokens"] = job.args.get("max_tokens", MAX_TOKENS)
    texts = []
    for i in range(job.args.get("calls", 1)):
        model = job.args.get("model") or multi_model.model_for(job, SONNET)
        reply = await baton.call_llm(job, prompt(job, i), model=model, **params)
        texts.append(reply.text[:20])
    return {"texts": texts}


@baton.step(retry_policy=FAST_RETRY)
async def ask_then_fail(job: baton.Job) -> dict:
    """Calls the model, then fails: every retry pays again."""
    await baton.call_llm(job, prompt(job), model=job.args["model"], max_tokens=MAX_TOKENS)
    raise RuntimeError(f"broke after calling the model (attempt {job.attempt})")


@baton.step
async def synthesize(job: baton.Job) -> dict:
    return {"models": sorted(multi_model.collect_fan_results(job))}


@baton.step
async def plain(job: baton.Job) -> dict:
    return {"ok": True}


ALL = [ask, ask_then_fail, synthesize, plain]


@baton.step(local=True)
async def ask_locally(job: baton.Job) -> dict:
    reply = await baton.call_llm(job, prompt(job), model=SONNET, max_tokens=MAX_TOKENS)
    return {"text": reply.text[:20]}


@baton.step
async def ask_or_skip(job: baton.Job) -> dict:
    """Catches the refusal and carries on: the flow still starts no new step."""
    try:
        await baton.call_llm(job, prompt(job), model=SONNET, max_tokens=MAX_TOKENS)
    except baton.BudgetExceeded as err:
        return {"skipped": err.message[:60], "cap": str(err.cap_usd)}
    return {"skipped": None}


ALL += [ask_locally, ask_or_skip]
