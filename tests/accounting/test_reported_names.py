"""A model name a provider reply reports is shown on terminals as text, never run as
escape sequences: the ledger stores what the reply said (a proxy or a compatible server
chooses it), and ``baton stats`` / ``baton status`` print it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from temporalio.client import Client

import baton_temporal as baton
from baton_temporal.cli._commands import format_step_states
from baton_temporal.ledger import LedgerStore
from baton_temporal.stats import format_cost_by_model, format_steps
from baton_temporal.testing import Fault, StandIn
from tests.ledger_support import ledger_rows

from .cost_steps import COST_STEPS, ask_once
from .test_cost_truth import openai_reply

HOSTILE = "gpt-4o\x1b[2J\x1b]0;owned\x07\u202e"


def _no_controls(text: str) -> bool:
    return all(c.isprintable() or c == "\n" for c in text)


async def test_a_reported_model_name_never_reaches_the_terminal_as_control_characters(
    client: Client, task_queue: str, baton_worker, store: LedgerStore, standin: StandIn
) -> None:
    reply = openai_reply("gpt-4o", prompt_tokens=10, completion_tokens=2)
    reply["model"] = HOSTILE
    standin.script("gpt-4o", [Fault.reply(reply)])
    flow = baton.new(workflow_name="names").add("ask", ask_once, {"model": "gpt-4o"})
    async with baton_worker(COST_STEPS, ledger=store, llm=standin.config()):
        await flow.run(client, task_queue=task_queue)
    (row,) = await ledger_rows(store, flow.workflow_id)
    assert row["model"] == HOSTILE  # stored as the provider said it
    now = datetime.now(UTC)
    printed = [
        format_steps(await store.steps_for_workflow(flow.workflow_id)),
        format_cost_by_model(await store.cost_by_model(now - timedelta(hours=1), now)),
        format_step_states({"ask": {"state": "done", "model": HOSTILE, "error": HOSTILE}}),
    ]
    for text in printed:
        assert _no_controls(text), text
        assert "gpt-4o\\x1b[2J\\x1b]0;owned\\x07\\u202e" in text
