"""The ledger equals what the provider billed: call for call, dimension for dimension.

Replies are built from the SDKs' own types (``anthropic.types``, ``openai.types``),
served by the provider stand-in to the real SDK clients through ``call_llm`` in a real
step, and written to a real ledger (SQLite and PostgreSQL). The rule checked: the cost
the ledger stores for a reply equals what genai-prices computes from that raw reply
(``extract_usage`` + ``calc_price`` at the call's time, with the reply's service tier).
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from decimal import Decimal
from typing import Any

import anthropic.types as at
import genai_prices
import openai.types as ot
import pytest
from openai.types.responses import ResponseUsage
from temporalio.client import Client, WorkflowFailureError

import baton_temporal as baton
from baton_temporal.ledger import LedgerStore
from baton_temporal.ledger._schema import quantize_cost
from baton_temporal.llm._usage import usage_from_reply
from baton_temporal.pricing import GenAIPricesPricer
from baton_temporal.testing import Fault, StandIn
from tests.ledger_support import ledger_rows

from .cost_steps import (
    COST_STEPS,
    ask_all_at_once,
    ask_concurrently,
    ask_each,
    ask_once,
    reuse_reply,
)


def anthropic_reply(model: str, **usage: Any) -> dict[str, Any]:
    message = at.Message.model_validate(
        {
            "id": "msg_x",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": "ok"}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0, **usage},
        }
    )
    return message.model_dump(mode="json")


def openai_reply(model: str, service_tier: str | None = None, **usage: Any) -> dict[str, Any]:
    completion = ot.chat.ChatCompletion.model_validate(
        {
            "id": "chatcmpl-x",
            "object": "chat.completion",
            "created": 1,
            "model": model,
            "service_tier": service_tier,
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": "ok"},
                }
            ],
            "usage": {"total_tokens": 0, **usage},
        }
    )
    return completion.model_dump(mode="json")


# (name, reply, the columns the ledger must hold, the dimension that must change the price)
CASES: list[tuple[str, dict[str, Any], dict[str, Any], dict[str, Any]]] = [
    (
        "anthropic: 1h and 5m cache writes, reads, web searches, thinking",
        anthropic_reply(
            "claude-sonnet-4-5",
            input_tokens=100,
            cache_read_input_tokens=2000,
            cache_creation_input_tokens=3000,
            cache_creation={"ephemeral_5m_input_tokens": 1000, "ephemeral_1h_input_tokens": 2000},
            output_tokens=500,
            output_tokens_details={"thinking_tokens": 200},
            server_tool_use={"web_search_requests": 3, "web_fetch_requests": 0},
            service_tier="standard",
        ),
        {
            "input_tokens": 5100,
            "cache_read_tokens": 2000,
            "cache_write_tokens": 3000,
            "cache_write_1h_tokens": 2000,
            "web_search_requests": 3,
            "reasoning_tokens": 200,
            "output_tokens": 500,
        },
        {"cache_write_1h_tokens": 0, "web_search_requests": 0},
    ),
    (
        "anthropic: fast mode",
        anthropic_reply("claude-opus-4-8", input_tokens=1000, output_tokens=100, speed="fast"),
        {"speed": "fast", "input_tokens": 1000},
        {"speed": None},
    ),
    (
        "anthropic: batch tier",
        anthropic_reply(
            "claude-sonnet-4-5", input_tokens=1000, output_tokens=100, service_tier="batch"
        ),
        {"service_tier": "batch"},
        {"service_tier": None},
    ),
    (
        "openai chat: audio in and out, cached",
        openai_reply(
            "gpt-audio",
            prompt_tokens=1000,
            completion_tokens=300,
            prompt_tokens_details={"cached_tokens": 0, "audio_tokens": 400},
            completion_tokens_details={"audio_tokens": 100, "reasoning_tokens": 0},
        ),
        {"input_audio_tokens": 400, "output_audio_tokens": 100},
        {"input_audio_tokens": 0, "output_audio_tokens": 0},
    ),
    (
        "openai chat: flex tier, cache reads and writes, reasoning",
        openai_reply(
            "gpt-5",
            service_tier="flex",
            prompt_tokens=4000,
            completion_tokens=900,
            prompt_tokens_details={"cached_tokens": 1000, "cache_write_tokens": 500},
            completion_tokens_details={"reasoning_tokens": 600},
        ),
        {
            "service_tier": "flex",
            "cache_read_tokens": 1000,
            "cache_write_tokens": 500,
            "reasoning_tokens": 600,
        },
        {"service_tier": None},
    ),
    (
        "openai chat: priority tier",
        openai_reply("gpt-4o", service_tier="priority", prompt_tokens=1000, completion_tokens=50),
        {"service_tier": "priority"},
        {"service_tier": None},
    ),
]


def genai_prices_cost(reply: dict[str, Any], provider: str, at_time: datetime) -> Decimal:
    """What genai-prices says the raw reply costs (the ledger must agree)."""
    flavor = "default" if provider == "anthropic" else "chat"
    extracted = genai_prices.extract_usage(reply, provider_id=provider, api_flavor=flavor)
    context: dict[str, str] = {}
    usage = reply.get("usage") or {}
    if provider == "openai" and reply.get("service_tier"):
        context["service_tier"] = reply["service_tier"]
    if provider == "anthropic" and usage.get("speed") == "fast":
        context["speed"] = "fast"
    if provider == "anthropic" and usage.get("service_tier") == "batch":
        context["processing"] = "batch"
    calc = extracted.calc_price(genai_request_timestamp=at_time, price_context=context or None)
    return calc.total_price


async def test_every_billed_dimension_is_stored_and_priced_as_genai_prices_does(
    client: Client, task_queue: str, baton_worker, store: LedgerStore, standin: StandIn
) -> None:
    models = []
    for _, reply, _, _ in CASES:
        standin.script(reply["model"], [Fault.reply(reply)])
        models.append(reply["model"])
    flow = baton.new(workflow_name="dims").add("each", ask_each, {"models": models})
    async with baton_worker(COST_STEPS, ledger=store, llm=standin.config()):
        await flow.run(client, task_queue=task_queue)
    rows = sorted(await ledger_rows(store, flow.workflow_id), key=lambda r: r["call_index"])
    assert len(rows) == len(CASES) == standin.billed_calls()
    pricer = GenAIPricesPricer()
    for row, (name, reply, columns, without) in zip(rows, CASES, strict=True):
        provider = "anthropic" if reply["model"].startswith("claude") else "openai"
        assert row["status"] == "ok" and row["model"] == reply["model"], name
        for column, value in columns.items():
            assert row[column] == value, (name, column)
        assert row["requested_at"] is not None and row["requested_at"] <= row["recorded_at"]
        expected = quantize_cost(genai_prices_cost(reply, provider, row["requested_at"]))
        assert row["cost_usd"] == expected, name
        # The dimension is priced: without it, the same call costs something else.
        usage = usage_from_reply(reply, provider=provider, model=reply["model"])
        usage = usage.model_copy(update={"requested_at": row["requested_at"]})
        if "cache_write_1h_tokens" in without:
            usage = usage.model_copy(update={"cache_write_1h_tokens": 0})
        plain = pricer.cost(usage.model_copy(update=without))
        assert plain is not None and plain.cost_usd is not None
        assert quantize_cost(plain.cost_usd) != row["cost_usd"], name


def test_responses_api_usage_is_read_as_genai_prices_reads_it() -> None:
    usage = ResponseUsage.model_validate(
        {
            "input_tokens": 3000,
            "input_tokens_details": {"cached_tokens": 1200, "cache_write_tokens": 400},
            "output_tokens": 700,
            "output_tokens_details": {"reasoning_tokens": 300},
            "total_tokens": 3700,
        }
    )
    reply = {"model": "o3", "service_tier": "flex", "usage": usage.model_dump(mode="json")}
    mine = usage_from_reply(reply, provider="openai", model="o3")
    assert (mine.input_tokens, mine.cache_read_tokens, mine.output_tokens) == (3000, 1200, 700)
    assert mine.cache_write_tokens == 400
    assert (mine.reasoning_tokens, mine.service_tier) == (300, "flex")
    when = datetime.fromisoformat("2026-06-01T00:00:00+00:00")
    quote = GenAIPricesPricer().cost(mine.model_copy(update={"requested_at": when}))
    extracted = genai_prices.extract_usage(reply, provider_id="openai", api_flavor="responses")
    reference = extracted.calc_price(
        genai_request_timestamp=when, price_context={"service_tier": "flex"}
    )
    assert quote is not None and quote.cost_usd == reference.total_price


async def test_concurrent_calls_in_one_attempt_each_get_a_row(
    client: Client, task_queue: str, baton_worker, store: LedgerStore, standin: StandIn
) -> None:
    flow = baton.new(workflow_name="gather").add(
        "fan", ask_concurrently, {"model": "gpt-4o-mini", "calls": 12}
    )
    async with baton_worker(COST_STEPS, ledger=store, llm=standin.config()):
        await flow.run(client, task_queue=task_queue)
    rows = await ledger_rows(store, flow.workflow_id)
    assert standin.billed_calls() == 12
    assert len(rows) == 12
    assert sorted(r["call_id"] for r in rows) == sorted(f"fan/1/{i}" for i in range(12))
    assert all(r["status"] == "ok" and r["cost_usd"] is not None for r in rows)


async def test_calls_that_reply_after_their_attempt_failed_are_recorded_as_failed(
    client: Client, task_queue: str, baton_worker, store: LedgerStore, standin: StandIn
) -> None:
    # gather: gpt-4o is refused at once and fails the attempt; the two gpt-4o-mini calls
    # are still out, and reply (billed) after the attempt's end.
    standin.script("gpt-4o", [Fault.status(400)])
    standin.script("gpt-4o-mini", [Fault.slow(1.0), Fault.slow(1.0)])
    models = ["gpt-4o-mini", "gpt-4o", "gpt-4o-mini"]
    flow = baton.new(workflow_name="late").add("g", ask_all_at_once, {"models": models})
    async with baton_worker(COST_STEPS, ledger=store, llm=standin.config()):
        with pytest.raises(WorkflowFailureError):
            await flow.run(client, task_queue=task_queue)
        for _ in range(100):
            rows = await ledger_rows(store, flow.workflow_id)
            if len(rows) == 2 and all(r["status"] != "pending" for r in rows):
                break
            await asyncio.sleep(0.1)
    assert standin.billed_calls() == 2
    assert sorted((r["call_id"], r["status"]) for r in rows) == [
        ("g/1/0", "step_failed"),
        ("g/1/2", "step_failed"),
    ]
    assert all(r["cost_usd"] is not None for r in rows)


async def test_a_reply_kept_from_an_earlier_attempt_and_reported_again_counts_once(
    client: Client, task_queue: str, baton_worker, store: LedgerStore, standin: StandIn
) -> None:
    # llm_usage=[reply.usage] (the object, as the README suggests) is accepted, and the
    # call, recorded by attempt 1, is not recorded again by attempt 2 that reports it.
    flow = baton.new(workflow_name="reuse").add("r", reuse_reply, {})
    async with baton_worker(COST_STEPS, ledger=store, llm=standin.config()):
        result = await flow.run(client, task_queue=task_queue)
    assert "llm_usage" not in result.results["r"]
    rows = await ledger_rows(store, flow.workflow_id)
    assert standin.billed_calls() == 1
    assert [(r["attempt"], r["call_id"], r["status"]) for r in rows] == [
        (1, "r/1/0", "step_failed")
    ]


async def test_a_billed_reply_that_fails_to_parse_is_recorded(
    client: Client, task_queue: str, baton_worker, store: LedgerStore, standin: StandIn
) -> None:
    broken = openai_reply("gpt-4o", prompt_tokens=321, completion_tokens=12)
    broken["choices"] = "not a list of choices"  # billed (200 + usage), unusable
    standin.script("gpt-4o", [Fault.reply(broken), Fault.ok()])
    flow = baton.new(workflow_name="garbled").add("ask", ask_once, {"model": "gpt-4o"})
    async with baton_worker(COST_STEPS, ledger=store, llm=standin.config()):
        await flow.run(client, task_queue=task_queue)
    rows = sorted(await ledger_rows(store, flow.workflow_id), key=lambda r: r["attempt"])
    assert standin.billed_calls() == 2
    assert [(r["attempt"], r["status"]) for r in rows] == [(1, "step_failed"), (2, "ok")]
    assert (rows[0]["input_tokens"], rows[0]["output_tokens"]) == (321, 12)
    assert rows[0]["cost_usd"] is not None


async def test_absurd_provider_counts_fail_clearly_and_the_call_stays_counted(
    client: Client, task_queue: str, baton_worker, store: LedgerStore, standin: StandIn
) -> None:
    absurd = openai_reply("gpt-4o", prompt_tokens=10**13, completion_tokens=5)
    standin.script("gpt-4o", [Fault.reply(absurd)])
    flow = baton.new(workflow_name="absurd").add("ask", ask_once, {"model": "gpt-4o"})
    async with baton_worker(COST_STEPS, ledger=store, llm=standin.config()):
        with pytest.raises(WorkflowFailureError) as caught:
            await flow.run(client, task_queue=task_queue)
    text = str(caught.value.cause) + str(getattr(caught.value.cause, "cause", ""))
    assert "InvalidProviderUsage" in text or "cannot store" in text
    assert "refused as untrue" in text
    rows = await ledger_rows(store, flow.workflow_id)
    # Not retried (one billed call), and counted with its usage unknown (not as a reply
    # the worker lost: it arrived), the reason beside it.
    assert standin.billed_calls() == 1
    assert [(r["attempt"], r["status"], r["cost_usd"]) for r in rows] == [
        (1, "usage_unknown", None)
    ]
    assert "refused as untrue" in rows[0]["price_note"]
    assert "worker" not in rows[0]["price_note"]
