"""Worker processes, the temporal CLI and hand-written workflows, against the dev server."""

from __future__ import annotations

import asyncio
import collections
import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import temporalio.converter
from temporalio.client import Client, WorkflowHistory
from temporalio.testing import WorkflowEnvironment

import baton_temporal as baton
from baton_temporal.cli._devserver import temporal_cli_path

from .handwritten import HandwrittenBrief
from .steps import ALL, logged, timed

ROOT = Path(__file__).resolve().parents[2]


def address(env: WorkflowEnvironment) -> str:
    return env.client.service_client.config.target_host


def start_worker(env: WorkflowEnvironment, task_queue: str, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "workers.worker"],
        cwd=ROOT,
        env={
            **os.environ,
            "TEMPORAL_ADDRESS": address(env),
            "BATON_STEPS": "tests.core.steps",
            "BATON_TASK_QUEUE": task_queue,
            "BATON_TEST_LOG": str(log),
            "BATON_GRACEFUL_SHUTDOWN_S": "30",
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


async def wait_for_line(log: Path, text: str, timeout: float = 20) -> None:
    for _ in range(int(timeout / 0.05)):
        if log.exists() and text in log.read_text():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{text!r} never appeared in {log}")


def events(log: Path) -> collections.Counter:
    return collections.Counter(
        (line.split()[1], line.split()[2]) for line in log.read_text().splitlines()
    )


async def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run the temporal CLI without blocking the event loop the in-test worker runs on."""
    return await asyncio.to_thread(
        subprocess.run,
        [temporal_cli_path(), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def chain() -> baton.Flow:
    return (
        baton.new(workflow_name="chain")
        .add("first", logged)
        .add("slow", logged, {"sleep": 2.5}, deps=["first"])
        .add("last", logged, deps=["slow"])
    )


async def test_sigkill_mid_run_fresh_worker_finishes_without_rerunning_completed_steps(
    temporal_env, client: Client, task_queue: str, tmp_path: Path
) -> None:
    log = tmp_path / "executions.log"
    flow = chain()
    doomed = start_worker(temporal_env, task_queue, log)
    try:
        handle = await flow.start(client, task_queue=task_queue)
        await wait_for_line(log, "slow start")
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(10)
    finally:
        doomed.kill()
    fresh = start_worker(temporal_env, task_queue, log)
    try:
        result = await asyncio.wait_for(handle.result(), 60)
    finally:
        fresh.terminate()
        fresh.wait(30)
    counts = events(log)
    assert set(result.results) == {"first", "slow", "last"}
    assert counts[("first", "start")] == counts[("first", "done")] == 1
    assert counts[("last", "start")] == counts[("last", "done")] == 1
    # The killed attempt of "slow" never finished; the retry on the fresh worker did, once.
    assert counts[("slow", "start")] == 2 and counts[("slow", "done")] == 1
    assert result.steps["slow"].attempt == 2


async def test_sigterm_drains_the_running_step_and_exits_zero(
    temporal_env, client: Client, task_queue: str, tmp_path: Path
) -> None:
    log = tmp_path / "executions.log"
    flow = chain()
    worker = start_worker(temporal_env, task_queue, log)
    try:
        handle = await flow.start(client, task_queue=task_queue)
        await wait_for_line(log, "slow start")
        worker.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(worker.wait, 30)
        output = worker.stdout.read().decode() if worker.stdout else ""
    finally:
        worker.kill()
    assert code == 0, output
    assert events(log)[("slow", "done")] == 1  # it finished before the process exited
    fresh = start_worker(temporal_env, task_queue, log)
    try:
        result = await asyncio.wait_for(handle.result(), 60)
    finally:
        fresh.terminate()
        fresh.wait(30)
    assert events(log)[("slow", "start")] == 1
    assert result.steps["slow"].attempt == 1


async def test_worker_program_refuses_to_start_without_steps() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "workers.worker",
        cwd=ROOT,
        env={**os.environ, "BATON_STEPS": ""},
        stderr=subprocess.PIPE,
    )
    _, err = await proc.communicate()
    assert proc.returncode == 2
    assert b"set BATON_STEPS" in err


async def test_flow_started_from_the_temporal_cli(
    temporal_env, task_queue: str, baton_worker
) -> None:
    flow = (
        baton.new(workflow_name="from-cli")
        .add("a", timed, {"value": 41})
        .add("b", timed, deps=["a"])
    )
    workflow_id = f"cli-{uuid.uuid4()}"
    common = ["--address", address(temporal_env), "--namespace", "default"]
    async with baton_worker(ALL):
        start = await run_cli(
            "workflow",
            "start",
            *common,
            "--type",
            baton.FLOW_WORKFLOW_TYPE,
            "--task-queue",
            task_queue,
            "--workflow-id",
            workflow_id,
            "--input",
            flow.to_json(),
        )
        assert start.returncode == 0, start.stderr
        result = await run_cli(
            "workflow", "result", *common, "--workflow-id", workflow_id, "--output", "json"
        )
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    text = json.dumps(payload)
    assert '"status": "COMPLETED"' in text or "COMPLETED" in text
    assert '"value": 41' in text and '"saw": ["a"]' in text


async def test_handwritten_workflow_matches_the_declared_flow(
    client: Client, task_queue: str, baton_worker
) -> None:
    flow = (
        baton.new(workflow_name="brief")
        .add("fetch", timed, {"url": "https://example.org"})
        .add("compile", timed, deps=["fetch"])
    )
    async with baton_worker(ALL, workflows=[HandwrittenBrief]):
        handle = await client.start_workflow(
            HandwrittenBrief.run, "https://example.org", id=str(uuid.uuid4()), task_queue=task_queue
        )
        by_hand = await handle.result()
        await flow.run(client, task_queue=task_queue)
        by_hand_history = await handle.fetch_history()
        flow_history = await client.get_workflow_handle(flow.workflow_id).fetch_history()
    assert by_hand["compile"]["saw"] == ["credibility", "keywords", "summarize"]
    # UI labels: a declared flow's steps carry their node names; hand-written steps only
    # the summary= given (each costs worker CPU in the sandbox).
    assert activity_summaries(flow_history) == ["fetch (timed)", "compile (timed)"]
    assert activity_summaries(by_hand_history) == ["fetch the page", None, None, None, None]
    assert by_hand["summarize"]["saw"] == ["fetch"]
    middle = [by_hand[k] for k in ("summarize", "keywords", "credibility")]
    assert max(m["start"] for m in middle) < min(m["end"] for m in middle)


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        ('{"baton_flow": 1}', "workflow_name: Field required"),
        ("[1]", "a flow must be a JSON object, got list"),
        (
            '{"baton_flow": 2, "workflow_name": "x", "steps": []}',
            "unsupported flow schema version 2",
        ),
    ],
)
async def test_cli_input_that_is_not_a_flow_fails_at_once(
    temporal_env, task_queue: str, baton_worker, bad: str, expected: str
) -> None:
    workflow_id = f"cli-bad-{uuid.uuid4()}"
    common = ["--address", address(temporal_env)]
    async with baton_worker(ALL):
        start = await run_cli(
            "workflow",
            "start",
            *common,
            "--type",
            baton.FLOW_WORKFLOW_TYPE,
            "--task-queue",
            task_queue,
            "--workflow-id",
            workflow_id,
            "--input",
            bad,
        )
        assert start.returncode == 0, start.stderr
        result = await run_cli("workflow", "result", *common, "--workflow-id", workflow_id)
    assert result.returncode != 0
    assert "FAILED" in result.stdout and expected in result.stdout, result.stdout


def activity_summaries(history: WorkflowHistory) -> list[str | None]:
    """The UI summary of each scheduled activity, in order (None: no summary)."""
    converter = temporalio.converter.default().payload_converter
    return [
        converter.from_payload(e.user_metadata.summary, str)
        if e.user_metadata.HasField("summary")
        else None
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
    ]
