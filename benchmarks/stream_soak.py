"""A reply that streams for minutes inside a step: `make stream-soak` (~2.5 minutes).

One step streams a long Anthropic reply from the stand-in, one event every
``--delay`` seconds for ``--seconds`` in all, with a 10 s heartbeat timeout (stall
limit 8 s) and a start-to-close timeout above the reply's length, on a real dev server
with an SQLite ledger. Prints the wall time, the attempts (1 if nothing was mistaken for
a stall), the stand-in's events and the ledger row.

    python -m benchmarks.stream_soak [--seconds 150] [--delay 0.5]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

import baton_temporal as baton
from baton_temporal.cli._devserver import DEV_SERVER_ARGS, temporal_cli_path
from baton_temporal.ledger import LedgerStore
from baton_temporal.pricing import GenAIPricesPricer
from baton_temporal.testing import Fault, StandIn

MODEL = "claude-sonnet-4-20250514"


@baton.step(heartbeat_timeout=timedelta(seconds=10), start_to_close_timeout=timedelta(minutes=30))
async def long_reply(job: baton.Job) -> dict:
    prompt = [{"role": "user", "content": "Write the long report."}]
    reply = await baton.call_llm(job, prompt, model=MODEL, max_tokens=64_000)
    return {"chars": len(reply.text), "streamed": reply.streamed, "attempt": job.attempt}


async def main(seconds: float, delay: float) -> None:
    events = max(1, int(seconds / delay))
    text = "".join(f"part {i:05d} " for i in range(events))  # 11 characters an event
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli_path(),
        ui=False,
        dev_server_log_level="error",
        dev_server_extra_args=DEV_SERVER_ARGS,
    )
    with tempfile.TemporaryDirectory() as tmp:
        store = LedgerStore.from_url(
            f"sqlite:///{Path(tmp) / 'ledger.sqlite3'}", pricer=GenAIPricesPricer()
        )
        await store.migrate()
        try:
            async with StandIn() as standin:
                standin.script(MODEL, [Fault.stream(text, chunk_delay=delay, chunk_chars=11)])
                queue = f"soak-{uuid.uuid4().hex[:8]}"
                plugin = baton.BatonPlugin(steps=[long_reply], ledger=store, llm=standin.config())
                flow = baton.new(workflow_name="stream-soak").add("long", long_reply)
                async with Worker(env.client, task_queue=queue, plugins=[plugin]):
                    started = time.monotonic()
                    result = await flow.run(env.client, task_queue=queue)
                    took = time.monotonic() - started
                rows = await store.steps_for_workflow(flow.workflow_id)
                sent = standin.requests
        finally:
            await store.close()
            await env.shutdown()
    out = result.results["long"]
    print(f"stream of {events:,} events, {delay:g} s apart: flow took {took:.1f} s")
    print(f"result: {out}")
    print(f"requests: {[(r.outcome, r.billed) for r in sent]}")
    print(f"ledger: {rows}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=150.0)
    parser.add_argument("--delay", type=float, default=0.5)
    args = parser.parse_args()
    asyncio.run(main(args.seconds, args.delay))
