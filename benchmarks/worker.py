"""A benchmark worker process: ``python -m benchmarks.worker --kind baton|plain ...``.

Prints one JSON line ``{"ready": true}`` once polling, then obeys stdin commands, one a
line: ``stats`` (print and clear the per-activity timings as one JSON line) and ``quit``
(or end of input: shut down). An outermost activity interceptor times every activity
attempt as the worker runs it (everything inside it: baton's step wrapper, its usage
interceptor and ledger write, the provider call).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import defaultdict
from typing import Any

from temporalio import activity
from temporalio.client import Client
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
    Worker,
)

TIMINGS: dict[str, list[float]] = defaultdict(list)


class _Timed(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        started = time.perf_counter()
        try:
            return await self.next.execute_activity(input)
        finally:
            TIMINGS[activity.info().activity_type].append((time.perf_counter() - started) * 1000)


def _time_calls(module: Any, name: str, label: str) -> None:
    """Wrap ``module.name`` (a coroutine function) to time each call under ``label``."""
    original = getattr(module, name)

    async def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return await original(*args, **kwargs)
        finally:
            kind = activity.info().activity_type if activity.in_activity() else "-"
            TIMINGS[f"{label} {kind}"].append((time.perf_counter() - started) * 1000)

    setattr(module, name, timed)


class TimingInterceptor(Interceptor):
    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _Timed(next)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kind", choices=["baton", "plain"], required=True)
    parser.add_argument("--address", required=True)
    parser.add_argument("--task-queue", required=True)
    parser.add_argument("--ledger", default="none", help="ledger URL, or 'none'")
    parser.add_argument("--max-concurrent-activities", type=int, help="default: Temporal's")
    args = parser.parse_args()

    from .experiments import apply

    apply()
    client = await Client.connect(args.address)
    options: dict[str, Any] = {"interceptors": [TimingInterceptor()]}
    if args.max_concurrent_activities:
        options["max_concurrent_activities"] = args.max_concurrent_activities
    if args.kind == "baton":
        import baton_temporal as baton
        from baton_temporal.llm import LLMConfig
        from baton_temporal.steps import _accounting
        from workers.examples import seed

        from .baton_workflows import HandwrittenSeed

        # Inside baton's usage interceptor: the ledger write, and the provider call.
        _time_calls(_accounting, "_write", "(ledger write)")
        _time_calls(_accounting, "complete", "(provider call)")

        plugin = baton.BatonPlugin(
            steps=seed.STEPS,
            workflows=[HandwrittenSeed],
            ledger=False if args.ledger == "none" else args.ledger,
            llm=LLMConfig.from_env(),
            migrate=False,
        )
        options["plugins"] = [plugin]
    else:
        from . import plain
        from .plain_workflow import PlainSeed

        _time_calls(plain, "complete", "(provider call)")
        options["workflows"] = [PlainSeed]
        options["activities"] = plain.ACTIVITIES

    loop = asyncio.get_running_loop()
    async with Worker(client, task_queue=args.task_queue, **options):
        print(json.dumps({"ready": True}), flush=True)
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            command = line.strip()
            if command == "stats":
                print(json.dumps({"timings": TIMINGS}), flush=True)
                TIMINGS.clear()
            elif not line or command == "quit":
                break
    if args.kind == "plain":
        from . import plain

        await plain.close_clients()


if __name__ == "__main__":
    asyncio.run(main())
