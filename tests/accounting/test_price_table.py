"""A price table (BATON_PRICES_FILE, TablePricer) prices the calls it lists by the name
they are asked for, although providers reply with a dated snapshot name and the ledger
stores that one: gpt-4o is answered as gpt-4o-2024-08-06."""

from __future__ import annotations

from decimal import Decimal

from temporalio.client import Client

import baton_temporal as baton
from baton_temporal.ledger import LedgerStore
from baton_temporal.pricing import ChainPricer, GenAIPricesPricer, TablePricer
from baton_temporal.testing import Fault, StandIn
from tests.ledger_support import ledger_rows

from .cost_steps import COST_STEPS, ask_once
from .test_cost_truth import anthropic_reply, openai_reply

CONTRACT = TablePricer(
    {
        "gpt-4o": {"input": "1", "output": "2"},
        "claude-sonnet-4-5": {"input": "3", "output": "4"},
    },
    version="contract-1",
)


async def test_a_price_table_prices_the_dated_names_providers_reply_with(
    client: Client, task_queue: str, baton_worker, store: LedgerStore, standin: StandIn
) -> None:
    url = store.engine.url.render_as_string(hide_password=False)
    priced = LedgerStore.from_url(url, pricer=ChainPricer(CONTRACT, GenAIPricesPricer()))
    replies = {
        "gpt-4o": openai_reply("gpt-4o-2024-08-06", prompt_tokens=1000, completion_tokens=500),
        "claude-sonnet-4-5": anthropic_reply(
            "claude-sonnet-4-5-20250929", input_tokens=1000, output_tokens=500
        ),
    }
    flow = baton.new(workflow_name="contract")
    for asked, reply in replies.items():
        standin.script(asked, [Fault.reply(reply)])
        flow = flow.add(asked.replace("-", "_")[:20], ask_once, {"model": asked})
    try:
        async with baton_worker(COST_STEPS, ledger=priced, llm=standin.config()):
            await flow.run(client, task_queue=task_queue)
    finally:
        await priced.close()
    rows = {r["model"]: r for r in await ledger_rows(store, flow.workflow_id)}
    assert sorted(rows) == ["claude-sonnet-4-5-20250929", "gpt-4o-2024-08-06"]
    # 1000 in and 500 out at the contract's USD per million tokens, not the list price.
    gpt, claude = rows["gpt-4o-2024-08-06"], rows["claude-sonnet-4-5-20250929"]
    assert (gpt["cost_usd"], gpt["price_model"], gpt["price_version"]) == (
        Decimal("0.002"),
        "gpt-4o",
        "contract-1",
    )
    assert (claude["cost_usd"], claude["price_model"]) == (Decimal("0.005"), "claude-sonnet-4-5")
