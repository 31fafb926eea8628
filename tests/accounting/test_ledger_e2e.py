"""Every LLM call a flow makes lands in the ledger once per attempt, with its cost:
real dev server, real SDK clients against the provider stand-in, real databases."""

from __future__ import annotations

import json
import logging
from decimal import Decimal

import pytest
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError

import baton_temporal as baton
from baton_temporal.ledger import LedgerStore
from baton_temporal.pricing import GenAIPricesPricer
from baton_temporal.testing import Fault, StandIn
from baton_temporal.usage import LLMUsage
from tests.ledger_support import ledger_rows

from .steps import ALL, ask, ask_and_report, ask_then_fail, bad_usage, reported_only

pytestmark = pytest.mark.timeout(120)


def one(name: str, step: object, args: dict, **kw: object) -> baton.Flow:
    return baton.new(workflow_name="acct", **kw).add(name, step, args)  # type: ignore[arg-type]


async def test_usage_is_stripped_and_recorded_per_call_with_its_cost(
    client: Client, task_queue: str, baton_worker, store: LedgerStore, standin: StandIn
) -> None:
    flow = (
        baton.new(workflow_name="acct")
        .add("claude", ask, {"model": "claude-sonnet-4-20250514", "calls": 2})
        .add("openai", ask, {"model": "gpt-4o"})
        .add("reported", reported_only, deps=["claude"])
        .add("mystery", ask, {"model": "openai:my-private-model-7"})
    )
    async with baton_worker(ALL, ledger=store, llm=standin.config()):
        result = await flow.run(client, task_queue=task_queue)
    assert "llm_usage" not in result.results["reported"]
    assert result.results["reported"] == {"answer": 42}
    rows = await ledger_rows(store, flow.workflow_id)
    assert [(r["step"], r["model"]) for r in rows].count(
        ("claude", "claude-sonnet-4-20250514")
    ) == 2
    assert len(rows) == 5 == standin.billed_calls() + 1  # +1: the hand-reported call
    assert len({r["call_key"] for r in rows}) == 5
    assert {r["workflow_name"] for r in rows} == {"acct"}
    pricer = GenAIPricesPricer()
    for row in rows:
        usage = LLMUsage(
            model=row["model"],
            provider=row["provider"],
            input_tokens=row["input_tokens"],
            output_tokens=row["output_tokens"],
            cache_read_tokens=row["cache_read_tokens"],
            cache_write_tokens=row["cache_write_tokens"],
            reasoning_tokens=row["reasoning_tokens"],
        )
        quote = pricer.cost(usage)
        if row["model"] == "my-private-model-7":
            assert quote is None and row["cost_usd"] is None and row["price_model"] is None
        else:
            assert quote is not None and row["cost_usd"] is not None
            assert Decimal(row["cost_usd"]) == quote.cost_usd
            assert row["price_model"] == quote.price_model
    # Tokens as the stand-in reported them, normalised: OpenAI includes cached tokens
    # in input, Anthropic's input plus its cache reads and writes.
    billed = {
        r.model: r.usage
        for r in standin.billed_requests()
        if r.provider == "openai" and r.model == "gpt-4o"
    }
    openai_row = next(r for r in rows if r["step"] == "openai")
    assert openai_row["input_tokens"] == billed["gpt-4o"]["prompt_tokens"]
    totals = await store.workflow_totals(flow.workflow_id)
    assert totals.calls == 5 and totals.unpriced_calls == 1
    assert totals.input_tokens == sum(r["input_tokens"] for r in rows)
    assert totals.cost_usd == sum(Decimal(r["cost_usd"]) for r in rows if r["cost_usd"] is not None)


async def test_a_call_reported_both_ways_counts_once_by_its_call_id(
    client: Client, task_queue: str, baton_worker, store: LedgerStore, standin: StandIn
) -> None:
    flow = (
        baton.new(workflow_name="acct")
        .add("dumped", ask_and_report, {"model": "gpt-4o", "how": "dump"})
        .add("copied", ask_and_report, {"model": "claude-sonnet-4-20250514", "how": "copy"})
    )
    async with baton_worker(ALL, ledger=store, llm=standin.config()):
        result = await flow.run(client, task_queue=task_queue)
    assert all("llm_usage" not in r for r in result.results.values())
    rows = await ledger_rows(store, flow.workflow_id)
    # "dumped" (the usage object, call id included): its real call once, plus the extra
    # call it reported. "copied" (numbers without a call id): equal numbers prove nothing,
    # so the copy is a call of its own; the call id is what makes two reports one call.
    assert sorted((r["step"], r["input_tokens"] == 1000) for r in rows) == [
        ("copied", False),
        ("copied", False),
        ("copied", True),
        ("dumped", False),
        ("dumped", True),
    ]
    assert standin.billed_calls() == 2


async def test_every_attempt_is_billed_and_a_failed_step_keeps_its_calls(
    client: Client, task_queue: str, baton_worker, store: LedgerStore, standin: StandIn
) -> None:
    retried = one("retried", ask_then_fail, {"model": "gpt-4o", "succeed_on": 3})
    doomed = one("doomed", ask_then_fail, {"model": "gpt-4o", "succeed_on": 0})
    async with baton_worker(ALL, ledger=store, llm=standin.config()):
        await retried.run(client, task_queue=task_queue)
        with pytest.raises(WorkflowFailureError):
            await doomed.run(client, task_queue=task_queue)
    rows = await ledger_rows(store, retried.workflow_id)
    assert [(r["attempt"], r["status"]) for r in rows] == [
        (1, "step_failed"),
        (2, "step_failed"),
        (3, "ok"),
    ]
    doomed_rows = await ledger_rows(store, doomed.workflow_id)
    assert [(r["attempt"], r["status"]) for r in doomed_rows] == [
        (i, "step_failed") for i in range(1, 6)
    ]
    assert standin.billed_calls() == 3 + 5 == len(rows) + len(doomed_rows)
    totals = await store.workflow_totals(retried.workflow_id)
    assert totals.attempts == 3 and totals.calls == 3


async def test_malformed_llm_usage_fails_at_once_and_keeps_the_real_call(
    client: Client, task_queue: str, baton_worker, store: LedgerStore, standin: StandIn
) -> None:
    flow = one("bad", bad_usage, {})
    async with baton_worker(ALL, ledger=store, llm=standin.config()):
        with pytest.raises(WorkflowFailureError) as info:
            await flow.run(client, task_queue=task_queue)
    cause = info.value.cause
    assert isinstance(cause, ApplicationError)
    assert "InvalidLLMUsage" in cause.message
    assert "input_tokens: Input should be greater than or equal to 0" in cause.message
    rows = await ledger_rows(store, flow.workflow_id)
    assert [(r["attempt"], r["status"], r["model"]) for r in rows] == [(1, "step_failed", "gpt-4o")]


async def test_rate_limit_waits_for_retry_after_and_400_fails_at_once(
    client: Client, task_queue: str, baton_worker, store: LedgerStore, standin: StandIn
) -> None:
    standin.script("gpt-4o", [Fault.status(429, retry_after=2), Fault.ok()])
    standin.script("claude-opus-4-20250514", [Fault.status(400, "max_tokens: too large")])
    limited = one("limited", ask, {"model": "gpt-4o"})
    rejected = one("rejected", ask, {"model": "claude-opus-4-20250514"})
    async with baton_worker(ALL, ledger=store, llm=standin.config()):
        await limited.run(client, task_queue=task_queue)
        with pytest.raises(WorkflowFailureError) as info:
            await rejected.run(client, task_queue=task_queue)
    first, second = [r for r in standin.requests if r.model == "gpt-4o"]
    assert second.time - first.time >= 2.0
    # The 429 was not billed: one ledger row, for the attempt that was answered.
    assert [r["attempt"] for r in await ledger_rows(store, limited.workflow_id)] == [2]
    cause = info.value.cause
    assert isinstance(cause, ApplicationError) and "ProviderRejected" in cause.message
    assert "max_tokens: too large" in cause.message
    assert len([r for r in standin.requests if r.model == "claude-opus-4-20250514"]) == 1
    assert await ledger_rows(store, rejected.workflow_id) == []


async def test_debug_logs_and_keys_never_leak(
    client: Client, task_queue: str, baton_worker, store: LedgerStore, standin: StandIn, caplog
) -> None:
    planted = "sk-planted-" + "7f3a9c" * 6
    config = standin.config(anthropic_api_key=planted, openai_api_key=planted)
    standin.script("gpt-4o", [Fault.status(401, "invalid x-api-key {api_key}")])
    flow = (
        baton.new(workflow_name="acct", debug=True)
        .add("ok", ask, {"model": "claude-sonnet-4-20250514"})
        .add("denied", ask, {"model": "gpt-4o"})
    )
    caplog.set_level(logging.DEBUG)
    async with baton_worker(ALL, ledger=store, llm=config):
        with pytest.raises(WorkflowFailureError) as info:
            await flow.run(client, task_queue=task_queue)
        history = await client.get_workflow_handle(flow.workflow_id).fetch_history()
    logs = await store.debug_logs(flow.workflow_id)
    assert len(logs) == 1 and logs[0].step == "ok"
    assert logs[0].request["messages"][0]["content"].endswith("ok call 0")
    assert "content" in json.dumps(logs[0].response)
    # The 401 body echoed the key back; what Temporal stored must not hold it.
    cause = info.value.cause
    assert isinstance(cause, ApplicationError) and "invalid x-api-key" in cause.message
    haystacks = {
        "history": history.to_json(),
        "failure": str(info.value) + str(cause),
        "ledger": json.dumps(await ledger_rows(store, flow.workflow_id), default=str),
        "debug logs": json.dumps([e.model_dump(mode="json") for e in logs]),
        "logs": caplog.text,
    }
    for where, text in haystacks.items():
        assert planted not in text, f"API key found in {where}"
    assert any(r.api_key_present for r in standin.requests)
