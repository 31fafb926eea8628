"""Replies whose usage cannot be believed: billed, so they get a row, but never a
silent 0. Hostile usage blocks are served by the stand-in to the real SDK clients, through
``call_llm`` in real steps, into real ledgers (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from temporalio.client import Client, WorkflowFailureError

import baton_temporal as baton
from baton_temporal import stats
from baton_temporal.ledger import LedgerStore
from baton_temporal.pricing import GenAIPricesPricer
from baton_temporal.testing import Fault, StandIn
from tests.ledger_support import ledger_rows

from .cost_steps import COST_STEPS, ask_each, ask_once
from .test_cost_truth import anthropic_reply, openai_reply


@pytest_asyncio.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[LedgerStore]:
    async with LedgerStore.from_url(
        f"sqlite:///{tmp_path / 'ledger.sqlite3'}", pricer=GenAIPricesPricer()
    ) as s:
        await s.migrate()
        yield s


def without_usage(reply: dict[str, Any], how: str) -> dict[str, Any]:
    out = dict(reply)
    if how == "null":
        out["usage"] = None
    else:
        out.pop("usage")
    return out


# (model, reply): the reply is fine but for its usage, which says nothing.
SILENT = [
    ("gpt-4o", without_usage(openai_reply("gpt-4o", prompt_tokens=9, completion_tokens=1), "null")),
    (
        "gpt-4o-mini",
        without_usage(openai_reply("gpt-4o-mini", prompt_tokens=9, completion_tokens=1), "missing"),
    ),
    ("claude-sonnet-4-5", {**anthropic_reply("claude-sonnet-4-5"), "usage": None}),
    (
        "claude-opus-4-1",
        {**anthropic_reply("claude-opus-4-1"), "usage": {"input_tokens": 7, "output_tokens": None}},
    ),
]


async def test_a_reply_without_usage_is_recorded_usage_unknown_not_free(
    client: Client, task_queue: str, baton_worker, store: LedgerStore, standin: StandIn
) -> None:
    for model, reply in SILENT:
        standin.script(model, [Fault.reply(reply)])
    models = [m for m, _ in SILENT]
    flow = baton.new(workflow_name="silent").add("ask", ask_each, {"models": models})
    async with baton_worker(COST_STEPS, ledger=store, llm=standin.config()):
        result = await flow.run(client, task_queue=task_queue)
    assert result.results["ask"] == {"done": len(models)}  # the replies themselves are fine
    rows = await ledger_rows(store, flow.workflow_id)
    assert standin.billed_calls() == len(rows) == len(models)
    for row in rows:
        assert row["status"] == "usage_unknown" and row["cost_usd"] is None, row
        assert row["price_note"].startswith("usage unknown: the reply reported no usage")
    totals = await store.workflow_totals(flow.workflow_id)
    assert (totals.calls, totals.usage_unknown_calls, totals.unpriced_calls) == (4, 4, 4)
    shown = stats.format_totals(totals)
    line = next(x for x in shown.splitlines() if x.startswith("usage unknown"))
    assert line.split()[2:6] == ["4", "(billed", "replies", "without"], line
    assert shown.splitlines()[-1].split()[-1] == "unpriced"
    table = stats.format_steps(await store.steps_for_workflow(flow.workflow_id))
    assert "usage unknown" in table and "$0.000000" not in table


# (model, reply, the field and value the error must name)
HOSTILE = [
    ("gpt-4o", openai_reply("gpt-4o", prompt_tokens=-50, completion_tokens=5), "prompt_tokens"),
    (
        "claude-sonnet-4-5",
        anthropic_reply("claude-sonnet-4-5", input_tokens=10, output_tokens=5)
        | {"usage": {"input_tokens": 10, "output_tokens": 12.5}},
        "usage.output_tokens is 12.5",
    ),
    (
        "gpt-4o-mini",
        openai_reply("gpt-4o-mini", prompt_tokens=10, completion_tokens=5)
        | {"usage": {"prompt_tokens": "10", "completion_tokens": 5}},
        "usage.prompt_tokens is '10'",
    ),
    (
        "claude-opus-4-1",
        anthropic_reply("claude-opus-4-1")
        | {
            "usage": {
                "input_tokens": 10,
                "output_tokens": 5,
                "cache_creation": {"ephemeral_1h_input_tokens": -3},
            }
        },
        "usage.cache_creation.ephemeral_1h_input_tokens is -3",
    ),
]


@pytest.mark.parametrize(("model", "reply", "named"), HOSTILE, ids=[h[2][:24] for h in HOSTILE])
async def test_impossible_token_counts_are_refused_by_name_and_the_call_kept(
    model: str,
    reply: dict[str, Any],
    named: str,
    client: Client,
    task_queue: str,
    baton_worker,
    sqlite_store: LedgerStore,
    standin: StandIn,
) -> None:
    standin.script(model, [Fault.reply(reply)])
    flow = baton.new(workflow_name="hostile").add("ask", ask_once, {"model": model})
    async with baton_worker(COST_STEPS, ledger=sqlite_store, llm=standin.config()):
        with pytest.raises(WorkflowFailureError) as caught:
            await flow.run(client, task_queue=task_queue)
    text = str(caught.value.cause) + str(getattr(caught.value.cause, "cause", ""))
    # Non-retryable, names the field and value, and what to check.
    assert "InvalidProviderUsage" in text and named in text, text
    assert "not whole numbers >= 0" in text and "base URL" in text
    assert standin.billed_calls() == 1  # not retried
    rows = await ledger_rows(sqlite_store, flow.workflow_id)
    assert [(r["status"], r["cost_usd"], r["input_tokens"]) for r in rows] == [
        ("usage_unknown", None, 0)
    ]
    assert named in rows[0]["price_note"] and "worker" not in rows[0]["price_note"]
