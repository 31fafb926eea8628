"""Durable batch fan-outs: the providers' batch APIs (stand-in, real SDK clients), a real
Temporal dev server, real ledgers (PostgreSQL for the big run, SQLite for the rest)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from typing import Any

import genai_prices
import pytest
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

import baton_temporal as baton
from baton_temporal import multi_model
from baton_temporal.flow import FlowError
from baton_temporal.ledger import LedgerStore
from baton_temporal.ledger._schema import quantize_cost
from baton_temporal.testing import StandIn
from baton_temporal.workflow import _batch as batch_workflow
from tests.ledger_support import ledger_rows

from .handwritten import BatchAny, BatchBrief
from .steps import STEPS, assess_doc, drifting, pick_best

CLAUDE, GPT = "claude-sonnet-4-20250514", "gpt-4o"
FAST = multi_model.BatchOptions(
    poll_interval=timedelta(milliseconds=200), max_poll_interval=timedelta(seconds=1)
)


def batch_flow(
    docs: int, *, quorum: int | None = None, options: multi_model.BatchOptions = FAST
) -> baton.Flow:
    flow = baton.new(workflow_name="batch-docs")
    for i in range(docs):
        flow = flow.pipe(
            multi_model.fan_out,
            f"doc{i}",
            assess_doc,
            models=[CLAUDE, GPT],
            args={"text": f"Document {i}: " + "quarterly figures and outlook. " * (i % 7 + 1)},
            batch=options,
            **(
                {"synthesize_with": pick_best, "quorum": quorum, "cancel_stragglers": False}
                if quorum
                else {}
            ),
        )
    return flow


def expected_batch_cost(standin: StandIn) -> Decimal:
    """The batch price of everything the stand-in answered, computed from its own usage
    blocks: genai-prices' batch variant where it has one (gpt-4o), else half of its
    standard price (claude-sonnet-4-20250514: Anthropic bills batches at 50%)."""
    total = Decimal(0)
    for batch in standin.batch.batches:
        for result in (batch.results or {}).values():
            if result["kind"] != "ok":
                continue
            usage = result["body"]["usage"]
            if batch.provider == "anthropic":
                reads, writes = (
                    usage["cache_read_input_tokens"],
                    usage["cache_creation_input_tokens"],
                )
                counted = genai_prices.Usage(
                    input_tokens=usage["input_tokens"] + reads + writes,
                    cache_read_tokens=reads,
                    cache_write_tokens=writes,
                    output_tokens=usage["output_tokens"],
                )
                standard = genai_prices.calc_price(counted, CLAUDE, provider_id="anthropic")
                batch_ctx = genai_prices.calc_price(
                    counted, CLAUDE, provider_id="anthropic", price_context={"processing": "batch"}
                )
                assert batch_ctx.total_price == standard.total_price  # genai-prices has none
                total += quantize_cost(standard.total_price / 2)
            else:
                counted = genai_prices.Usage(
                    input_tokens=usage["prompt_tokens"],
                    cache_read_tokens=usage["prompt_tokens_details"]["cached_tokens"],
                    output_tokens=usage["completion_tokens"],
                )
                price = genai_prices.calc_price(
                    counted, GPT, provider_id="openai", price_context={"processing": "batch"}
                )
                standard = genai_prices.calc_price(counted, GPT, provider_id="openai")
                assert price.total_price < standard.total_price  # genai-prices has one
                total += quantize_cost(price.total_price)
    return total


@pytest.mark.slow
async def test_hundred_documents_two_models_across_a_worker_restart(
    client: Client, task_queue: str, standin: StandIn, pg_store: LedgerStore
) -> None:
    standin.batch.delay = 3.0
    flow = batch_flow(100)
    started = time.monotonic()

    def worker() -> Worker:
        plugin = baton.BatonPlugin(steps=STEPS, ledger=pg_store, llm=standin.config())
        return Worker(client, task_queue=task_queue, plugins=[plugin])

    async with worker():
        handle = await flow.start(client, task_queue=task_queue)
        while len(standin.batch.batches) < 2:
            await asyncio.sleep(0.05)
    # The first worker is gone while both batches are still processing at the provider.
    assert all(time.time() - b.created < standin.batch.delay for b in standin.batch.batches)
    await asyncio.sleep(0.5)
    async with worker():
        result = await handle.result()
    elapsed = time.monotonic() - started

    problems = {n: s.error for n, s in result.steps.items() if s.state != "completed"}
    assert len(result.results) == 200 and not result.failed, problems
    assert {r["tier"] for r in result.results.values()} == {"batch"}
    batches = standin.batch.batches
    assert sorted((b.provider, len(b.requests)) for b in batches) == [
        ("anthropic", 100),
        ("openai", 100),
    ]
    rows = await ledger_rows(pg_store, flow.workflow_id)
    submitted = sum(len(b.requests) for b in batches)
    assert len(rows) == submitted == standin.batch.billed() == 200
    assert {r["service_tier"] for r in rows} == {"batch"}
    assert {r["step"] for r in rows} == set(result.results)
    cost = sum((r["cost_usd"] for r in rows), Decimal(0))
    expected = expected_batch_cost(standin)
    assert cost == expected
    history = await handle.fetch_history()
    events, size = len(history.events), len(history.to_json())
    # 400 step activities (prepare and finish), 2 submits, the polls, 2 fetches; the
    # JSON holds payloads base64-encoded.
    assert events < 2_000 and size < 10_000_000
    print(
        f"\n200 batch requests, {len(rows)} ledger rows, cost ${cost} = batch price "
        f"${expected}; {elapsed:.1f} s across a worker restart; history {events} events, "
        f"{size:,} bytes"
    )


async def test_per_request_error_fails_its_branch_and_a_lost_submit_reply_is_not_resubmitted(
    client: Client,
    task_queue: str,
    baton_worker: Any,
    standin: StandIn,
    sqlite_store: LedgerStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Results fetched one reply at a time (pages), as long answers would be.
    monkeypatch.setattr(batch_workflow, "MAX_FETCH_BYTES", 500)
    standin.batch.fail_request("doc1_gpt_4o")  # custom ids name the step
    standin.batch.lose_create_replies = 2  # both providers' first create: made, reply lost
    flow = batch_flow(3, quorum=1)  # each document's synthesis needs 1 of its 2 models
    async with baton_worker(STEPS, ledger=sqlite_store, llm=standin.config()):
        result = await flow.run(client, task_queue=task_queue)
    # The failed request failed its own step only, with the provider's error.
    assert result.failed == ["doc1_gpt_4o"]
    error = result.steps["doc1_gpt_4o"].error or ""
    assert "BatchRequestFailed" in error and "prompt is too long" in error
    assert result.results["doc1_synthesis"]["models"] == [CLAUDE]
    # One batch per provider although each create was sent twice.
    assert sorted(b.provider for b in standin.batch.batches) == ["anthropic", "openai"]
    rows = await ledger_rows(sqlite_store, flow.workflow_id)
    batch_rows = [r for r in rows if r["service_tier"] == "batch"]
    assert len(batch_rows) == standin.batch.billed() == 5
    assert "doc1_gpt_4o" not in {r["step"] for r in rows}
    history = await client.get_workflow_handle(flow.workflow_id).fetch_history()
    fetches = [
        e
        for e in history.events
        if e.activity_task_scheduled_event_attributes.activity_type.name == "baton.batch_fetch"
    ]
    assert len(fetches) > 2  # more than one page per provider


async def test_hand_written_run_fan_out_batch_with_quorum(
    client: Client, task_queue: str, baton_worker: Any, standin: StandIn, sqlite_store: LedgerStore
) -> None:
    standin.batch.fail_request(
        "assess_sonnet_4", status=500, error_type="api_error", message="Internal server error"
    )
    async with baton_worker(
        [assess_doc], workflows=[BatchBrief], ledger=sqlite_store, llm=standin.config()
    ):
        scores = await client.execute_workflow(
            BatchBrief.run, "a short memo", id=f"brief-{task_queue}", task_queue=task_queue
        )
    assert list(scores) == [GPT]  # quorum 1 of 2: the failed model is left out
    rows = await ledger_rows(sqlite_store, f"brief-{task_queue}")
    assert [(r["step"], r["service_tier"]) for r in rows] == [("assess_gpt_4o", "batch")]


@pytest.mark.parametrize("how", ["expired", "no_results", "failed", "max_wait"])
async def test_batch_ended_without_every_result(
    how: str,
    client: Client,
    task_queue: str,
    baton_worker: Any,
    standin: StandIn,
    sqlite_store: LedgerStore,
) -> None:
    options = FAST
    if how == "expired":
        standin.batch.end_as = "expired"  # the provider answers half, expires the rest
    elif how == "no_results":
        standin.batch.drop_results = True  # ended, but no results file
    elif how == "failed":
        standin.batch.end_as = "failed"  # OpenAI: validation failed; Anthropic: all errored
    else:
        standin.batch.delay = 60.0  # never ends by itself: cancelled at max_wait
        options = replace(FAST, max_wait=timedelta(seconds=1))
    flow = batch_flow(2, options=options)
    async with baton_worker(STEPS, ledger=sqlite_store, llm=standin.config()):
        with pytest.raises(WorkflowFailureError) as caught:
            await flow.run(client, task_queue=task_queue)
    message = str(caught.value.cause)
    rows = await ledger_rows(sqlite_store, flow.workflow_id)
    if how in ("expired", "max_wait"):
        word = "expired" if how == "expired" else "cancel"
        assert "BatchRequestFailed" in message and word in message
        assert len(rows) == standin.batch.billed() == 2  # half of each provider's two
        cancelled = [b.cancelled_at is not None for b in standin.batch.batches]
        assert cancelled == [how == "max_wait"] * 2
    elif how == "failed":
        assert "failed validation" in message
        assert rows == []
    else:
        assert "no results file" in message or "returned no result" in message
        assert rows == []


def test_batch_fan_out_to_a_server_without_batch_api_is_refused_at_build() -> None:
    with pytest.raises(FlowError) as caught:
        baton.new(workflow_name="x").pipe(
            multi_model.fan_out,
            "a",
            assess_doc,
            models=["gpt-4o", "openai-compatible:llama3.2"],
            batch=True,
        )
    assert "no batch API" in str(caught.value) and "drop batch=True" in str(caught.value)
    with pytest.raises(FlowError, match="batch must be True, False or a BatchOptions"):
        baton.new(workflow_name="x").pipe(
            multi_model.fan_out, "a", assess_doc, models=["gpt-4o"], batch="yes"
        )
    with pytest.raises(ValueError, match="max_poll_interval"):
        multi_model.BatchOptions(
            poll_interval=timedelta(minutes=5), max_poll_interval=timedelta(seconds=1)
        )


async def test_hand_written_batch_fan_out_to_a_server_without_batch_api_fails_at_once(
    client: Client, task_queue: str, baton_worker: Any, standin: StandIn
) -> None:
    async with baton_worker([assess_doc], workflows=[BatchAny], llm=standin.config()):
        with pytest.raises(WorkflowFailureError) as caught:
            await client.execute_workflow(
                BatchAny.run,
                ["gpt-4o", "openai-compatible:llama3.2"],
                id=f"any-{task_queue}",
                task_queue=task_queue,
            )
    cause = caught.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "BatchUnsupported"
    assert "no batch API" in cause.message and "drop batch=True" in cause.message
    assert standin.batch.batches == [] and standin.requests == []  # nothing was sent


async def test_bad_batch_options_in_a_flow_file_fail_the_run_naming_the_entry(
    client: Client, task_queue: str, baton_worker: Any, standin: StandIn
) -> None:
    data = batch_flow(1).to_dict()
    for step in data["steps"]:
        step["fan_out"]["poll_seconds"] = "soon"
    flow = baton.Flow.from_json(data)
    async with baton_worker(STEPS, llm=standin.config()):
        with pytest.raises(WorkflowFailureError) as caught:
            await flow.run(client, task_queue=task_queue)
    text = str(caught.value.cause)
    assert "InvalidFlow" in text and "bug" not in text
    assert "poll_seconds is 'soon'" in text and "number of seconds" in text


async def test_a_batch_step_that_asks_differently_when_run_again_fails(
    client: Client, task_queue: str, baton_worker: Any, standin: StandIn
) -> None:
    flow = baton.new(workflow_name="drift").pipe(
        multi_model.fan_out, "d", drifting, models=["gpt-4o"], batch=FAST
    )
    async with baton_worker(STEPS, llm=standin.config()):
        with pytest.raises(WorkflowFailureError) as caught:
            await flow.run(client, task_queue=task_queue)
    text = str(caught.value.cause)
    assert "BatchUnsupported" in text and "differently when run again" in text
    assert "the same messages and parameters" in text
