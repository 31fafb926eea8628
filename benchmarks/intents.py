"""What the call intent costs: one extra ledger write in front of every LLM request.

Before intents, a call's usage was written once, at the end of its attempt. Now a call
writes its intent before the request (``begin_call``) and completes it on the reply
(``record``, an upsert over the intent). This measures, per call, on SQLite and on
PostgreSQL, sequentially (the latency a step sees):

* ``record`` alone (the old single write);
* ``begin_call`` + ``record`` (intent, then completion);

as wall time and as this process's CPU time. Run::

    PYTHONPATH=. python -m benchmarks.intents [--calls 400]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from baton_temporal.ledger import CallIntent, LedgerStore, UsageRecord
from baton_temporal.pricing import GenAIPricesPricer
from baton_temporal.testing.postgres import start_postgres
from baton_temporal.usage import LLMUsage


def _intent(run: str, i: int) -> CallIntent:
    return CallIntent(
        workflow_id="bench",
        run_id=run,
        step="s",
        activity_id=str(i),
        attempt=1,
        call_id=f"s/1/{i}",
        model="gpt-4o",
        prompt_chars=2000,
    )


def _record(run: str, i: int) -> UsageRecord:
    usage = LLMUsage(
        model="gpt-4o", provider="openai", input_tokens=500, output_tokens=80, call_id=f"s/1/{i}"
    )
    return UsageRecord(
        workflow_id="bench", run_id=run, step="s", activity_id=str(i), attempt=1, usage=usage
    )


async def _measure(store: LedgerStore, calls: int, *, intent: bool) -> tuple[float, float]:
    run = uuid.uuid4().hex
    walls, cpus = [], []
    for i in range(calls):
        w0, c0 = time.perf_counter(), time.process_time()
        if intent:
            await store.begin_call(_intent(run, i))
        await store.record(_record(run, i))
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    return statistics.median(walls) * 1000, statistics.mean(cpus) * 1000


async def _bench(url: str, calls: int) -> list[tuple[str, float, float]]:
    out = []
    async with LedgerStore.from_url(url, pricer=GenAIPricesPricer()) as store:
        await store.migrate()
        await _measure(store, 50, intent=True)  # warm up: connection, statements, prices
        for name, intent in (("usage write only", False), ("intent + completion", True)):
            wall, cpu = await _measure(store, calls, intent=intent)
            out.append((name, wall, cpu))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=400)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = {
            "sqlite": asyncio.run(_bench(f"sqlite:///{Path(tmp) / 'l.sqlite3'}", args.calls))
        }
    server = start_postgres()
    try:
        results["postgresql"] = asyncio.run(
            _bench(server.create_database(f"bench_{uuid.uuid4().hex[:8]}"), args.calls)
        )
    finally:
        server.close()
    print(f"per call, {args.calls} sequential calls (median wall ms, mean CPU ms)")
    for backend, rows in results.items():
        for name, wall, cpu in rows:
            print(f"{backend:11} {name:22} wall {wall:6.2f} ms   cpu {cpu:6.2f} ms")
        extra_wall = rows[1][1] - rows[0][1]
        extra_cpu = rows[1][2] - rows[0][2]
        print(
            f"{backend:11} {'extra per call':22} wall {extra_wall:6.2f} ms   "
            f"cpu {extra_cpu:6.2f} ms"
        )


if __name__ == "__main__":
    main()
