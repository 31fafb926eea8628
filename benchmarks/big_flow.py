"""A 10,000-step flow on a real dev server: `make big-flow` (a few minutes on 2 cores).

Shape: one root step, 9,998 steps that each read the root's result, and one step that
reads all 9,998 results (a fan-in whose input, ~0.3 MB of JSON, goes to the payload
store). The flow workflow's defaults apply: a window of 1,000 steps in flight,
continue-as-new past 10,000 history events.

The workflow worker runs in this process and the step activities in a second process,
as production should for flows this big: in one process the activities' payload work
holds the GIL, a 10,000-step activation then exceeds Temporal's 2 s deadlock detector
on a busy machine, and temporalio's eviction of that run can wedge the worker's slot.

Prints the wall time, each run's history (events, bytes), and the peak of pending
activities sampled every 0.25 s with ``describe``. Writes the same as JSON to
``benchmarks/results/big_flow.json``.

    python -m benchmarks.big_flow [--steps 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

import baton_temporal as baton
from baton_temporal.cli._devserver import DEV_SERVER_ARGS, temporal_cli_path
from baton_temporal.payloads import external_storage, with_payload_store
from baton_temporal.workflow import FlowWorkflow

RESULTS = Path(__file__).parent / "results" / "big_flow.json"


@baton.step
async def leaf(job: baton.Job) -> dict:
    return {"i": job.args.get("i", 0), "saw": len(job.results)}


async def _runs(client, workflow_id: str) -> list[dict]:
    latest = await client.get_workflow_handle(workflow_id).describe()
    run_id = latest.raw_description.workflow_execution_info.first_run_id
    runs = []
    while run_id:
        events = [
            e
            async for e in client.get_workflow_handle(
                workflow_id, run_id=run_id
            ).fetch_history_events()
        ]
        activities = sum(
            1 for e in events if e.HasField("activity_task_scheduled_event_attributes")
        )
        runs.append(
            {
                "events": len(events),
                "bytes": sum(e.ByteSize() for e in events),
                "activities": activities,
            }
        )
        last = events[-1]
        run_id = (
            last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
            if last.HasField("workflow_execution_continued_as_new_event_attributes")
            else ""
        )
    return runs


async def main(steps: int) -> dict:
    width = steps - 2
    flow = baton.new(workflow_name="big-flow").add("root", leaf)
    for i in range(width):
        flow = flow.add(f"s{i:05d}", leaf, {"i": i}, deps=["root"])
    flow = flow.add("all", leaf, deps=[f"s{i:05d}" for i in range(width)])
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli_path(),
        ui=False,
        dev_server_log_level="error",
        dev_server_extra_args=DEV_SERVER_ARGS,
    )
    with tempfile.TemporaryDirectory() as store:
        address = env.client.service_client.config.target_host
        activities = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.big_flow", "--activities-at", address, store]
        )
        try:
            # Client and workflow worker read and write the same store as the steps.
            client = with_payload_store(env.client, external_storage(store))
            async with Worker(client, task_queue="big-flow", workflows=[FlowWorkflow]):
                start = time.perf_counter()
                handle = await flow.start(client, task_queue="big-flow")
                peak = 0
                waiter = asyncio.ensure_future(handle.result())
                while not waiter.done():
                    described = await client.get_workflow_handle(flow.workflow_id).describe()
                    peak = max(peak, len(described.raw_description.pending_activities))
                    await asyncio.wait([waiter], timeout=0.25)
                result = waiter.result()
                wall = time.perf_counter() - start
            runs = await _runs(client, flow.workflow_id)
        finally:
            activities.terminate()
            activities.wait(30)
            await env.shutdown()
    completed = sum(1 for s in result.steps.values() if s.state == "completed")
    report = {
        "steps": steps,
        "completed": completed,
        "results": len(result.results),
        "fan_in_saw": result.results["all"]["saw"],
        "wall_s": round(wall, 1),
        "runs": runs,
        "peak_pending_activities": peak,
    }
    return report


async def activity_worker(address: str, store: str) -> None:
    """The second process: runs the steps only."""
    client = with_payload_store(await Client.connect(address), external_storage(store))
    worker = Worker(
        client, task_queue="big-flow", activities=[leaf.activity], max_concurrent_activities=200
    )
    await worker.run()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--activities-at", help=argparse.SUPPRESS)
    parser.add_argument("store", nargs="?", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.activities_at:
        asyncio.run(activity_worker(args.activities_at, args.store))
        sys.exit(0)
    out = asyncio.run(main(args.steps))
    print(json.dumps(out, indent=2))
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2) + "\n")
