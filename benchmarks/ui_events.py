"""How should the cost page hear of step changes? Two event-driven ways, measured.

    python -m benchmarks.ui_events [--runs 5] [--watchers 1]     (make bench-ui-events)

The seed's shape (parse -> 3 models -> synthesis -> report), steps of 50 ms, on a real
dev server, run two ways:

* ``streams``: the workflow holds a ``temporalio.contrib.workflow_streams``
  WorkflowStream and publishes a step event at each state change; each watcher
  subscribes (``WorkflowStreamClient.subscribe``: a long-poll Update per poll).
* ``history``: the workflow is unchanged; each watcher follows the run's history with
  ``GetWorkflowExecutionHistory(wait_new_event)`` (ui/_follow.py) and queries the
  step states when events arrive (what ``baton ui`` and ``baton status --watch`` do).

Reported per way: history events of the run (what Temporal stores, counted toward the
51,200-event limit), and the latency from a step's activity returning to a watcher
seeing it completed (median and max over all steps of all runs).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from datetime import timedelta
from typing import Any

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.contrib.workflow_streams import WorkflowStream, WorkflowStreamClient
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from baton_temporal.cli._devserver import DEV_SERVER_ARGS, temporal_cli_path
from baton_temporal.ui import HistoryFollower

STEPS = [
    ("parse", ()),
    ("assess_a", ("parse",)),
    ("assess_b", ("parse",)),
    ("assess_c", ("parse",)),
    ("synthesis", ("assess_a", "assess_b", "assess_c")),
    ("report", ("synthesis",)),
]


@activity.defn
async def work(name: str) -> dict[str, Any]:
    await asyncio.sleep(0.05)
    return {"step": name, "returned_at": time.time()}


async def _dag(publish: Any, states: dict[str, dict[str, Any]]) -> None:
    done = {name: asyncio.Event() for name, _ in STEPS}

    async def one(name: str, deps: tuple[str, ...]) -> None:
        for d in deps:
            await done[d].wait()
        states[name] = {"state": "running"}
        publish({"step": name, "state": "running"})
        out = await workflow.execute_activity(
            work, name, start_to_close_timeout=timedelta(seconds=30)
        )
        states[name] = {"state": "completed", "returned_at": out["returned_at"]}
        publish({"step": name, "state": "completed", "returned_at": out["returned_at"]})
        done[name].set()

    await asyncio.gather(*(one(n, d) for n, d in STEPS))


@workflow.defn
class Streamed:
    @workflow.init
    def __init__(self) -> None:
        self.stream = WorkflowStream()
        self.states: dict[str, dict[str, Any]] = {}

    @workflow.run
    async def run(self) -> None:
        topic = self.stream.topic("steps")
        await _dag(topic.publish, self.states)

    @workflow.query
    def steps(self) -> dict[str, dict[str, Any]]:
        return self.states


@workflow.defn
class Plain:
    def __init__(self) -> None:
        self.states: dict[str, dict[str, Any]] = {}

    @workflow.run
    async def run(self) -> None:
        await _dag(lambda _: None, self.states)

    @workflow.query
    def steps(self) -> dict[str, dict[str, Any]]:
        return self.states


async def watch_stream(client: Client, wf_id: str, latencies: list[float]) -> None:
    seen = set()
    stream = WorkflowStreamClient.create(client, wf_id)
    async for item in stream.subscribe(["steps"]):
        event = item.data
        if event["state"] == "completed" and event["step"] not in seen:
            seen.add(event["step"])
            latencies.append(time.time() - event["returned_at"])
        if len(seen) == len(STEPS):
            return


async def watch_history(client: Client, wf_id: str, latencies: list[float]) -> None:
    seen: set[str] = set()
    handle = client.get_workflow_handle(wf_id)
    async with HistoryFollower(client, wf_id) as follower:
        while len(seen) < len(STEPS):
            await follower.wait()
            states = await handle.query("steps")
            now = time.time()
            for name, s in states.items():
                if s["state"] == "completed" and name not in seen:
                    seen.add(name)
                    latencies.append(now - s["returned_at"])
            if follower.closed and len(seen) < len(STEPS):
                states = await handle.query("steps")


async def one_way(client: Client, queue: str, way: str, runs: int, watchers: int) -> dict:
    events: list[int] = []
    latencies: list[float] = []
    for _ in range(runs):
        wf_id = f"ui-events-{way}-{uuid.uuid4().hex[:8]}"
        wf = Streamed.run if way == "streams" else Plain.run
        handle = await client.start_workflow(wf, id=wf_id, task_queue=queue)
        watch = watch_stream if way == "streams" else watch_history
        if watchers:
            await asyncio.gather(*(watch(client, wf_id, latencies) for _ in range(watchers)))
        await handle.result()
        history = await handle.fetch_history()
        events.append(len(history.events))
    return {
        "way": way,
        "watchers": watchers,
        "events": statistics.median(events),
        "latency_median_ms": round(statistics.median(latencies) * 1000, 1) if latencies else None,
        "latency_max_ms": round(max(latencies) * 1000, 1) if latencies else None,
    }


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--watchers", type=int, default=1)
    args = parser.parse_args()
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli_path(),
        ui=False,
        dev_server_log_level="error",
        dev_server_extra_args=DEV_SERVER_ARGS,
    )
    try:
        queue = "ui-events"
        async with Worker(
            env.client,
            task_queue=queue,
            workflows=[Streamed, Plain],
            activities=[work],
            workflow_runner=UnsandboxedWorkflowRunner(),
        ):
            rows = [await one_way(env.client, queue, "plain", args.runs, 0)]
            for watchers in sorted({1, args.watchers}):
                for way in ("streams", "history"):
                    rows.append(await one_way(env.client, queue, way, args.runs, watchers))
        for row in rows:
            print(
                f"{row['way']:8} watchers={row['watchers']}  history events {row['events']:>5}  "
                f"latency median {row['latency_median_ms']} ms, max {row['latency_max_ms']} ms"
            )
    finally:
        await env.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
