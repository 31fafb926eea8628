"""`baton status` of a flow whose step failed with terminal control sequences in its
message (a model's reply, a provider's body): the real program prints them as escapes,
so they cannot clear the screen, retitle the terminal or reverse the text."""

from __future__ import annotations

import uuid

import pytest
from temporalio.client import WorkflowFailureError

import baton_temporal as baton
from tests.observability.steps import ALL, scramble

from ._util import run_baton


async def test_status_prints_control_characters_of_an_error_as_escapes(
    client, baton_worker, task_queue: str, cli_env: dict[str, str]
) -> None:
    workflow_id = f"scramble-{uuid.uuid4().hex[:8]}"
    flow = baton.new(workflow_name="scramble", workflow_id=workflow_id).add(
        "scramble", scramble, {}
    )
    async with baton_worker(ALL, ledger=False):
        with pytest.raises(WorkflowFailureError):
            await flow.run(client, task_queue=task_queue)
        ran = await run_baton("status", workflow_id, env=cli_env, timeout=30)
    assert ran.code == 0, ran
    assert "\\x1b[2J\\x1b]0;owned\\x07 \\u202egnp.exe" in ran.out, ran.out
    assert not any(ch in ran.out + ran.err for ch in "\x1b\x07\u202e"), ran
