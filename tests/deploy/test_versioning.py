"""Worker deployment versioning on the dev server, with two worker versions.

A run started on version v1 stays on v1's code after v2 becomes current (its flows are
pinned), and runs started after that go to v2. Both workers run the same step name with
different code, so the results show which version's code ran each step.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

from temporalio.api.workflowservice.v1 import SetWorkerDeploymentCurrentVersionRequest
from temporalio.client import Client

import baton_temporal as baton
from baton_temporal.worker import WorkerSettings, run_worker

GATE = asyncio.Event()


@baton.step(name="versioned_probe")
async def probe_v1(job: baton.Job) -> dict:
    if job.args.get("wait"):
        await GATE.wait()
    return {"code": "v1"}


@baton.step(name="versioned_probe")
async def probe_v2(job: baton.Job) -> dict:
    return {"code": "v2"}


def two_step_flow(wait: bool) -> baton.Flow:
    return (
        baton.new(workflow_name="versioning", workflow_id=f"versioning-{uuid.uuid4().hex[:8]}")
        .add("first", probe_v1, {"wait": wait})
        .add("second", probe_v1, deps=["first"])
    )


@contextlib.asynccontextmanager
async def worker(
    client: Client, task_queue: str, deployment: str, build_id: str, step: baton.Step
) -> AsyncIterator[None]:
    settings = WorkerSettings(
        task_queue=task_queue,
        build_id=build_id,
        deployment_name=deployment,
        promote_first_version=True,
    )
    stop = asyncio.Event()
    plugin = baton.BatonPlugin(steps=[step], ledger=False)
    task = asyncio.create_task(run_worker(settings, client=client, plugin=plugin, stop=stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def current_build_id(client: Client, deployment: str) -> str:
    from temporalio.api.workflowservice.v1 import DescribeWorkerDeploymentRequest

    reply = await client.workflow_service.describe_worker_deployment(
        DescribeWorkerDeploymentRequest(namespace=client.namespace, deployment_name=deployment)
    )
    return reply.worker_deployment_info.routing_config.current_deployment_version.build_id


async def wait_for(predicate, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    async def loop() -> None:
        while not await predicate():
            await asyncio.sleep(0.2)

    await asyncio.wait_for(loop(), timeout)


async def test_runs_in_flight_stay_on_their_version(client: Client, task_queue: str) -> None:
    deployment = f"baton-test-{uuid.uuid4().hex[:8]}"
    GATE.clear()
    async with worker(client, task_queue, deployment, "v1", probe_v1):
        # BATON_PROMOTE_FIRST_VERSION: a deployment with no current version takes v1.
        async def v1_current() -> bool:
            with contextlib.suppress(Exception):
                return await current_build_id(client, deployment) == "v1"
            return False

        await wait_for(v1_current)
        in_flight = await two_step_flow(wait=True).start(client, task_queue=task_queue)

        async with worker(client, task_queue, deployment, "v2", probe_v2):
            # Promotion is the operator's step for every later version, never automatic.
            await asyncio.sleep(2)
            assert await current_build_id(client, deployment) == "v1"

            async def promote() -> bool:
                try:
                    await client.workflow_service.set_worker_deployment_current_version(
                        SetWorkerDeploymentCurrentVersionRequest(
                            namespace=client.namespace, deployment_name=deployment, build_id="v2"
                        )
                    )
                except Exception:
                    return False  # v2 not registered until its worker has polled
                return True

            await wait_for(promote)
            assert await current_build_id(client, deployment) == "v2"
            new_run = await two_step_flow(wait=False).start(client, task_queue=task_queue)
            new_result = await asyncio.wait_for(new_run.result(), 30)
            GATE.set()
            old_result = await asyncio.wait_for(in_flight.result(), 30)

    assert {k: v["code"] for k, v in old_result.results.items()} == {"first": "v1", "second": "v1"}
    assert {k: v["code"] for k, v in new_result.results.items()} == {"first": "v2", "second": "v2"}
    old = (await in_flight.describe()).raw_description.workflow_execution_info.versioning_info
    new = (await new_run.describe()).raw_description.workflow_execution_info.versioning_info
    assert (old.deployment_version.build_id, new.deployment_version.build_id) == ("v1", "v2")
    assert old.behavior == new.behavior  # both pinned
    from temporalio.api.enums.v1 import VersioningBehavior

    assert old.behavior == VersioningBehavior.VERSIONING_BEHAVIOR_PINNED
