"""A worker process for the scale benchmark: ``python -m benchmarks.scale_worker --kind ...``.

``--kind baton``: ``BatonPlugin(steps=seed.STEPS)`` (the generic flow workflow, the
seed's steps with ``call_llm``; ``--ledger URL`` or ``none``). ``--kind plain``: the
plain-temporalio ``PlainSeed`` workflow with :mod:`benchmarks.scale_plain`'s activities.
Both take ``--slots`` (``max_concurrent_activities``). Prints ``{"ready": true}`` once
polling, then answers ``clients`` (SDK clients built so far) and ``quit`` on stdin, and
the memory probes of :mod:`benchmarks._memprobe` (``mem``, ``mark``, ``diff``...).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from temporalio.client import Client
from temporalio.worker import Worker

from . import _memprobe


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kind", choices=["baton", "plain"], required=True)
    parser.add_argument("--address", required=True)
    parser.add_argument("--task-queue", required=True)
    parser.add_argument("--slots", type=int, required=True)
    parser.add_argument("--ledger", default="none")
    args = parser.parse_args()

    client = await Client.connect(args.address)
    options: dict[str, Any] = {"max_concurrent_activities": args.slots}
    plugin = None
    if args.kind == "baton":
        import baton_temporal as baton
        from baton_temporal.examples import seed
        from baton_temporal.llm import LLMConfig

        plugin = baton.BatonPlugin(
            steps=seed.STEPS,
            ledger=False if args.ledger == "none" else args.ledger,
            llm=LLMConfig.from_env(),
            migrate=False,
        )
        options["plugins"] = [plugin]
    else:
        import anthropic  # noqa: F401  imported before polling, as BatonPlugin does
        import openai  # noqa: F401

        from . import scale_plain
        from .plain_workflow import PlainSeed

        options["workflows"] = [PlainSeed]
        options["activities"] = scale_plain.ACTIVITIES

    loop = asyncio.get_running_loop()
    async with Worker(client, task_queue=args.task_queue, **options):
        print(json.dumps({"ready": True}), flush=True)
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            command = line.strip()
            if command == "clients":
                built = None
                if plugin is not None and plugin.resources() is not None:
                    resources = plugin.resources()
                    assert resources is not None
                    built = resources.clients.built
                else:
                    from . import scale_plain

                    built = len(scale_plain._clients)
                print(json.dumps({"clients": built}), flush=True)
            elif not line or command == "quit":
                break
            elif (probe := _memprobe.answer(command)) is not None:
                print(json.dumps(probe), flush=True)
    if args.kind == "plain":
        from . import scale_plain

        await scale_plain.close_clients()


if __name__ == "__main__":
    asyncio.run(main())
