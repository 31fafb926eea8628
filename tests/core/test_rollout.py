"""Rolling deploys: a flow that reaches a step only the new workers register waits for
them (bounded), without spending the step's own retry attempts. Real worker processes
and a real dev server."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowFailureError, WorkflowHistory
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer, Worker

import baton_temporal as baton
from baton_temporal.workflow import FlowWorkflow

from ..cli._util import clean_env, run_baton
from .rollout_steps import NEW, OLD, RUNS, RunsOneStep, added, broken, first

pytestmark = pytest.mark.timeout(240)

ROOT = Path(__file__).resolve().parents[2]
READY = "baton worker on task queue"
HISTORIES = Path(__file__).parent / "histories"


def rollout_flow() -> baton.Flow:
    return (
        baton.new(workflow_name="rollout").add("first", first).add("added", added, deps=["first"])
    )


@pytest.fixture
def address(temporal_env: WorkflowEnvironment) -> str:
    return temporal_env.client.service_client.config.target_host


@pytest.fixture
def old_worker(address: str, task_queue: str, tmp_path: Path) -> Iterator[subprocess.Popen]:
    """The old release: a worker process (``python -m workers.worker``) without ``added``."""
    log = tmp_path / "old-worker.log"
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": address,
        "BATON_STEPS": "tests.core.rollout_steps:OLD",
        "BATON_TASK_QUEUE": task_queue,
        "BATON_LEDGER_URL": f"sqlite:///{tmp_path / 'ledger.sqlite3'}",
        "BATON_UNREGISTERED_STEP_WAIT_S": "300",
        "BATON_GRACEFUL_SHUTDOWN_S": "2",
    }
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "workers.worker"], cwd=ROOT, env=env, stdout=out, stderr=out
        )
    proc.log = log  # type: ignore[attr-defined]
    try:
        for _ in range(600):
            if READY in log.read_text(errors="replace"):
                break
            assert proc.poll() is None, log.read_text()
            time.sleep(0.05)
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(20)


async def waiting_note(handle) -> str:
    """Until the step 'added' waits for a worker; its note."""
    for _ in range(400):
        states = await handle.query("baton.steps")
        if states["added"]["state"] == "waiting":
            return states["added"]["error"]
        await asyncio.sleep(0.05)
    raise AssertionError(f"'added' never waited: {states}")


async def ran_on_a_new_worker(workflow_id: str) -> None:
    for _ in range(3000):
        if RUNS.get(workflow_id, 0) >= 1:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the new worker never ran the step")


def unknown_step_failures(history) -> int:
    return sum(
        1
        for e in history.events
        if e.HasField("activity_task_failed_event_attributes")
        and e.activity_task_failed_event_attributes.failure.application_failure_info.type
        == "UnknownStep"
    )


async def test_a_flow_started_mid_rollout_waits_for_the_new_worker(
    client: Client, task_queue: str, address: str, old_worker
) -> None:
    flow = rollout_flow()
    handle = await flow.start(client, task_queue=task_queue)
    note = await waiting_note(handle)
    assert f"waiting for a worker of task queue {task_queue!r} that registers step 'added'" in note
    # `baton status` says so too (asked again if it caught the step between two tries,
    # when it is briefly "running" again).
    env = clean_env(TEMPORAL_ADDRESS=address)
    for _ in range(5):
        ran = await run_baton("status", flow.workflow_id, env=env)
        assert ran.code == 0, ran
        if "1 waiting" in ran.out:
            break
    assert "status      RUNNING" in ran.out
    assert "1 waiting" in ran.out and "1 completed" in ran.out, ran.out
    assert f"added: waiting for a worker of task queue {task_queue!r}" in ran.out
    # The new release starts beside the old one, which keeps polling until the new one
    # has run the step; then, as a rolling deploy does, the old one is stopped.
    async with Worker(client, task_queue=task_queue, plugins=[baton.BatonPlugin(steps=NEW)]):
        await ran_on_a_new_worker(flow.workflow_id)
        assert old_worker.poll() is None
        old_worker.terminate()
        result = await asyncio.wait_for(handle.result(), 60)
    # The step's own policy (2 attempts; its first run fails on purpose) was not spent by
    # the waiting: the second run succeeded.
    assert result.results["added"] == {"runs": 2, "saw": {"n": 1}}
    assert result.steps["added"].state == "completed"
    history = await handle.fetch_history()
    assert unknown_step_failures(history) >= 1


async def test_the_old_worker_killed_mid_wait(client: Client, task_queue: str, old_worker) -> None:
    flow = rollout_flow()
    handle = await flow.start(client, task_queue=task_queue)
    await waiting_note(handle)
    old_worker.kill()  # SIGKILL, while the flow sleeps between tries
    old_worker.wait(10)
    async with Worker(client, task_queue=task_queue, plugins=[baton.BatonPlugin(steps=NEW)]):
        result = await asyncio.wait_for(handle.result(), 60)
    assert result.results["added"]["runs"] == 2


async def test_old_workers_answering_retries_neither_spend_nor_renew_the_budget(
    client: Client, task_queue: str, old_worker
) -> None:
    # Old and new workers side by side: retries of 'broken' (3 attempts) may reach an old
    # worker; each such try is scheduled again with the attempts left, so the step runs
    # exactly 3 times on workers that have it, and fails with its own error.
    flow = baton.new(workflow_name="rollout").add("broken", broken)
    async with Worker(client, task_queue=task_queue, plugins=[baton.BatonPlugin(steps=NEW)]):
        handle = await flow.start(client, task_queue=task_queue)
        await ran_on_a_new_worker(flow.workflow_id)
        old_worker.terminate()
        with pytest.raises(WorkflowFailureError) as info:
            await asyncio.wait_for(handle.result(), 60)
    assert RUNS[flow.workflow_id] == 3
    assert "'broken' always fails" in str(info.value.cause)


async def test_no_worker_ever_registers_it(client: Client, task_queue: str) -> None:
    flow = rollout_flow()
    plugin = baton.BatonPlugin(steps=OLD, unregistered_step_wait=timedelta(seconds=3))
    async with Worker(client, task_queue=task_queue, plugins=[plugin]):
        handle = await flow.start(client, task_queue=task_queue)
        with pytest.raises(WorkflowFailureError) as info:
            await asyncio.wait_for(handle.result(), 60)
    err = info.value.cause
    assert isinstance(err, ApplicationError) and err.type == "FlowFailed"
    assert err.details[0] == {"failed": ["added"], "cancelled": []}
    assert (
        f"no step named 'added' is registered on the workers of task queue {task_queue!r}, "
        "and no worker that registers it appeared within 3 s; deploy workers that register it"
    ) in err.message
    assert "BatonPlugin(unregistered_step_wait=...)" in err.message
    history = await handle.fetch_history()
    assert unknown_step_failures(history) >= 2  # tried again while it waited


async def test_a_hand_written_workflow_gets_the_same_error(client: Client, task_queue: str) -> None:
    plugin = baton.BatonPlugin(steps=OLD, workflows=[RunsOneStep], unregistered_step_wait=0)
    async with Worker(client, task_queue=task_queue, plugins=[plugin]):
        with pytest.raises(WorkflowFailureError) as info:
            await client.execute_workflow(
                RunsOneStep.run, "added", id=str(uuid.uuid4()), task_queue=task_queue
            )
    err = info.value.cause
    assert isinstance(err, ActivityError)
    assert isinstance(err.cause, ApplicationError) and err.cause.type == "UnknownStep"
    assert "the workers are set not to wait for one" in err.cause.message


async def test_a_hand_written_workflow_waits_too(
    client: Client, task_queue: str, address: str
) -> None:
    # The sandboxed path: run_step in your own workflow waits like a declared flow.
    old = baton.BatonPlugin(steps=OLD, workflows=[RunsOneStep], unregistered_step_wait=120)
    old_worker = Worker(client, task_queue=task_queue, plugins=[old])
    running = asyncio.create_task(old_worker.run())
    handle = await client.start_workflow(
        RunsOneStep.run, "added", id=str(uuid.uuid4()), task_queue=task_queue
    )
    for _ in range(400):
        if unknown_step_failures(await handle.fetch_history()):
            break
        await asyncio.sleep(0.05)
    # The new worker (a client of its own, as another process would have) joins; once it
    # has run the step, the old one leaves, as at the end of a rolling deploy.
    other = await Client.connect(address)
    new = baton.BatonPlugin(steps=NEW, workflows=[RunsOneStep])
    async with Worker(other, task_queue=task_queue, plugins=[new]):
        await ran_on_a_new_worker(handle.id)
        await old_worker.shutdown()
        await running
        result = await asyncio.wait_for(handle.result(), 60)
    assert result == {"runs": 2, "saw": None}


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        (-1, ValueError, "between 0 and 7 days"),
        ("10", TypeError, "a timedelta or seconds"),
        (timedelta(days=8), ValueError, "between 0 and 7 days"),
    ],
)
def test_bad_wait_settings(value, error, message) -> None:
    with pytest.raises(error, match=message):
        baton.BatonPlugin(steps=OLD, unregistered_step_wait=value)


def test_bad_wait_setting_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATON_UNREGISTERED_STEP_WAIT_S", "ten")
    with pytest.raises(ValueError, match="BATON_UNREGISTERED_STEP_WAIT_S='ten' is not a number"):
        baton.BatonPlugin(steps=OLD)


async def test_a_recorded_run_of_release_0_1_replays() -> None:
    # A run of release 0.1 failed at once on a step no worker registered; it replays
    # through the old branch. A run of this release that waited is in the replay corpus
    # (tests/histories/current/unregistered_step.json).
    name = "unregistered_step_0.1"
    data = json.loads((HISTORIES / f"{name}.json").read_text())
    kinds = [e["eventType"] for e in data["events"]]
    assert "EVENT_TYPE_TIMER_STARTED" not in kinds
    assert "EVENT_TYPE_MARKER_RECORDED" not in kinds
    history = WorkflowHistory.from_json(f"replay-{name}", data)
    replayed = await Replayer(workflows=[FlowWorkflow]).replay_workflow(
        history, raise_on_replay_failure=False
    )
    assert replayed.replay_failure is None, replayed.replay_failure
