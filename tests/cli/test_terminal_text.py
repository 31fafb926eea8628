"""Text a provider chose (an error message) reaches the terminal as text: `baton start
--wait` prints a failed flow's cause with control characters escaped, so an endpoint
(a proxy, a compatible server) cannot drive the terminal of whoever runs the CLI."""

from __future__ import annotations

import uuid
from pathlib import Path

from baton_temporal.testing import Fault, StandIn
from workers.examples import seed

from ._util import run_baton

HOSTILE = "bad request \x1b[2J\x1b]0;owned\x07 here"


async def test_a_providers_error_message_is_printed_escaped(
    baton_worker, task_queue: str, cli_env: dict[str, str], tmp_path: Path
) -> None:
    run_id = f"cli-hostile-{uuid.uuid4().hex[:8]}"
    flow = tmp_path / "flow.json"
    flow.write_text(seed.analysis_flow("One.\n\nTwo.", models={"assess": "gpt-4o"}).to_json())
    async with StandIn() as standin:
        standin.script("gpt-4o", [Fault.status(400, message=HOSTILE)])
        async with baton_worker(steps=seed.STEPS, llm=standin.config(), ledger=False):
            ran = await run_baton(
                "start", str(flow), "--id", run_id, "--task-queue", task_queue, "--wait",
                env=cli_env,
            )  # fmt: skip
    assert ran.code == 2, ran
    assert "\x1b" not in ran.err and "\x07" not in ran.err
    assert "ProviderRejected" in ran.err and "\\x1b[2J\\x1b]0;owned\\x07" in ran.err, ran.err
