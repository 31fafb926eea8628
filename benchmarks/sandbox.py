"""Should the generic flow workflow run in Temporal's sandbox? Worker CPU per workflow.

    python -m benchmarks.sandbox [--rounds 10]     (make bench-sandbox)

Replays every recorded ``baton.Flow`` history in ``tests/histories/`` (real runs of the
seed fan-out, quorum, cascade, retries, local steps, a large payload...) through the
same workflow code two ways: unsandboxed (as registered today) and in the sandbox
(``SandboxedWorkflowRunner`` with baton's pass-through modules, as a user workflow
runs). Replay executes the workflow code over the whole history, as a worker does when
it runs the flow live plus a bit of history feeding (the same in both), so the CPU
difference is what the sandbox would cost a worker per flow. Rounds alternate the two
ways; the figure is the median round's process CPU divided by the histories replayed.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import statistics
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from temporalio.worker import Replayer, UnsandboxedWorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from baton_temporal._plugin import PASSTHROUGH_MODULES
from baton_temporal.workflow import FlowWorkflow
from tests.histories.replay import corpus, load

from .sandbox_flow import LiveSandboxedFlow, SandboxedFlow


def _replayers() -> dict[str, Replayer]:
    sandboxed = SandboxedWorkflowRunner()
    restrictions = sandboxed.restrictions.with_passthrough_modules(
        *PASSTHROUGH_MODULES, "benchmarks.sandbox_flow"
    )
    return {
        "unsandboxed": Replayer(
            workflows=[FlowWorkflow], unsandboxed_workflow_runner=UnsandboxedWorkflowRunner()
        ),
        "sandboxed": Replayer(
            workflows=[SandboxedFlow],
            workflow_runner=dataclasses.replace(sandboxed, restrictions=restrictions),
        ),
    }


async def _feed(histories: list[Any]) -> AsyncIterator[Any]:
    for history in histories:
        yield history


async def _round(replayer: Replayer, histories: list[Any]) -> float:
    start = time.process_time()
    results = await replayer.replay_workflows(_feed(histories), raise_on_replay_failure=False)
    cpu = time.process_time() - start
    failed = [f for f in results.replay_failures.values() if f is not None]
    if failed:
        raise SystemExit(f"replay failed: {failed[0]}")
    return cpu


async def main(rounds: int) -> dict[str, Any]:
    recorded = [r for r in corpus() if r.workflow_type == "baton.Flow"]
    histories = [load(r) for r in recorded]
    events = sum(r.events for r in recorded)
    replayers = _replayers()
    for replayer in replayers.values():  # warm-up: imports, first sandbox build
        await _round(replayer, histories)
    samples: dict[str, list[float]] = {name: [] for name in replayers}
    for i in range(rounds):
        order = list(replayers) if i % 2 == 0 else list(reversed(replayers))
        for name in order:
            samples[name].append(await _round(replayers[name], histories))
    per_flow = {n: statistics.median(s) / len(histories) * 1000 for n, s in samples.items()}
    out = {
        "histories": len(histories),
        "events": events,
        "rounds": rounds,
        "cpu_ms_per_workflow": {n: round(v, 2) for n, v in per_flow.items()},
        "cpu_ms_per_event": {n: round(v * len(histories) / events, 3) for n, v in per_flow.items()},
        "sandbox_extra_ms_per_workflow": round(per_flow["sandboxed"] - per_flow["unsandboxed"], 2),
        "ratio": round(per_flow["sandboxed"] / per_flow["unsandboxed"], 2),
    }
    return out


async def live(flows: int, in_flight: int, rounds: int) -> dict[str, Any]:
    """Run the seed fan-out ``flows`` times per round on a real dev server, one worker in
    this process (provider stand-in at 0 ms), as ``baton.Flow`` and as the sandboxed
    copy, alternating; process CPU per flow (worker, client and stand-in together: the
    difference is the sandbox's)."""
    from temporalio.testing import WorkflowEnvironment
    from temporalio.worker import Worker

    import baton_temporal as baton
    from baton_temporal.cli._devserver import DEV_SERVER_ARGS, temporal_cli_path
    from baton_temporal.examples import seed
    from baton_temporal.testing import StandIn

    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli_path(),
        ui=False,
        dev_server_log_level="error",
        dev_server_extra_args=DEV_SERVER_ARGS,
    )
    samples: dict[str, list[float]] = {"unsandboxed": [], "sandboxed": []}
    types = {"unsandboxed": "baton.Flow", "sandboxed": "bench.SandboxedFlow"}
    try:
        with StandIn() as standin:
            plugin = baton.BatonPlugin(
                steps=seed.STEPS,
                workflows=[LiveSandboxedFlow],
                ledger=False,
                llm=standin.config(),
            )
            queue = "bench-sandbox"
            async with Worker(env.client, task_queue=queue, plugins=[plugin]):
                gate = asyncio.Semaphore(in_flight)

                async def one(kind: str, i: int) -> None:
                    async with gate:
                        data = seed.quality_flow("one.\n\ntwo.", workflow_id=f"{kind}-{i}")
                        await env.client.execute_workflow(
                            types[kind], data.to_dict(), id=data.workflow_id, task_queue=queue
                        )

                for kind in types:  # warm-up
                    await asyncio.gather(*(one(kind, -1 - i) for i in range(in_flight)))
                for r in range(rounds):
                    for kind in types if r % 2 == 0 else list(reversed(types)):
                        start = time.process_time()
                        base = r * flows
                        await asyncio.gather(*(one(kind, base + i) for i in range(flows)))
                        samples[kind].append((time.process_time() - start) / flows * 1000)
    finally:
        await env.shutdown()
    per_flow = {k: statistics.median(v) for k, v in samples.items()}
    return {
        "flows_per_round": flows,
        "in_flight": in_flight,
        "rounds": rounds,
        "cpu_ms_per_flow": {k: round(v, 2) for k, v in per_flow.items()},
        "sandbox_extra_ms_per_flow": round(per_flow["sandboxed"] - per_flow["unsandboxed"], 2),
        "ratio": round(per_flow["sandboxed"] / per_flow["unsandboxed"], 2),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="sandboxed vs unsandboxed replay CPU")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument(
        "--live", type=int, default=100, help="flows per live round (0: replay only)"
    )
    args = parser.parse_args()
    out = {"replay": asyncio.run(main(args.rounds))}
    if args.live:
        out["live_seed_fan_out"] = asyncio.run(live(args.live, 20, 4))
    text = json.dumps(out, indent=2)
    print(text)
    (Path(__file__).parent / "results" / "sandbox.json").write_text(text + "\n")
