"""A batch fan-out through a Temporal server SIGKILLed mid-wait and restarted on its
database file (``make batch-faults``, ~30 s; not in the test suite for its time).

20 documents x 2 models in batch mode; the server is killed as soon as both provider
batches exist and started again 2 s later. Checks: every step completed, one batch per
provider (no second submission), the stand-in billed each request once.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from temporalio.worker import Worker

import baton_temporal as baton
from baton_temporal import multi_model
from baton_temporal.testing import StandIn

from ..faults.support import free_port
from ..faults.test_server_restart import DevServer, connect, result_of
from .steps import STEPS, assess_doc

DOCS = 20
MODELS = ["claude-sonnet-4-20250514", "gpt-4o"]


async def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="baton-batch-restart-"))
    server = DevServer(tmp / "temporal.db", free_port(), tmp / "server.log")
    server.start()
    started = time.monotonic()
    try:
        client = await connect(server.address)
        fast = multi_model.BatchOptions(
            poll_interval=timedelta(milliseconds=300), max_poll_interval=timedelta(seconds=1)
        )
        flow = baton.new(workflow_name="batch-restart")
        for i in range(DOCS):
            flow = flow.pipe(
                multi_model.fan_out,
                f"doc{i}",
                assess_doc,
                models=MODELS,
                args={"text": f"document {i}"},
                batch=fast,
            )
        with StandIn(batch_delay=6.0) as standin:
            plugin = baton.BatonPlugin(steps=STEPS, ledger=False, llm=standin.config())
            async with Worker(client, task_queue="batch-restart", plugins=[plugin]):
                handle = await flow.start(client, task_queue="batch-restart")
                while len(standin.batch.batches) < 2:
                    await asyncio.sleep(0.05)
                server.kill()
                killed = time.monotonic() - started
                await asyncio.sleep(2)
                server.start()
                result = await result_of(handle, 180)
            batches = sorted((b.provider, len(b.requests)) for b in standin.batch.batches)
            assert len(result.results) == DOCS * 2 and not result.failed, result.failed
            assert batches == [("anthropic", DOCS), ("openai", DOCS)], batches
            assert standin.batch.billed() == DOCS * 2
        print(
            f"server killed at {killed:.1f} s (both batches submitted), restarted 2 s later; "
            f"{len(result.results)} steps completed, batches {batches}, "
            f"{standin.batch.billed()} requests billed once; {time.monotonic() - started:.1f} s"
        )
    finally:
        server.stop()


if __name__ == "__main__":
    asyncio.run(main())
