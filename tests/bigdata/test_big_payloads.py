"""Big data is normal data: large results pass through the payload store, at any width.

Real dev server, real payload store (a directory, and PostgreSQL), the plain test client
(connected without BatonPlugin: ``Flow.run`` gives it the store).
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError
from temporalio.exceptions import ApplicationError

import baton_temporal as baton
from baton_temporal.payloads import (
    DEFAULT_THRESHOLD,
    PAYLOAD_MISSING_ERROR,
    PayloadStoreConfigError,
    external_storage,
    prune_payloads,
    with_payload_store,
)

from .steps import ALL, digest, make_doc, read_docs, text_of

MB = 1024 * 1024


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every worker and client of the test uses this directory as its payload store."""
    directory = tmp_path / "payloads"
    monkeypatch.setenv("BATON_PAYLOAD_STORE", str(directory))
    monkeypatch.delenv("BATON_PAYLOAD_THRESHOLD", raising=False)
    return directory


def stored(directory: Path) -> list[Path]:
    return sorted(directory.glob("*/*"))


async def run_histories(client: Client, workflow_id: str) -> list[list[HistoryEvent]]:
    """The events of each run of the workflow, first run first (across continue-as-new)."""
    latest = await client.get_workflow_handle(workflow_id).describe()
    run_id = latest.raw_description.workflow_execution_info.first_run_id
    runs = []
    while run_id:
        handle = client.get_workflow_handle(workflow_id, run_id=run_id)
        events = [e async for e in handle.fetch_history_events()]
        runs.append(events)
        last = events[-1]
        run_id = (
            last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
            if last.HasField("workflow_execution_continued_as_new_event_attributes")
            else ""
        )
    return runs


async def history_sizes(client: Client, workflow_id: str) -> list[int]:
    """Byte size of every event of every run of the workflow."""
    return [e.ByteSize() for run in await run_histories(client, workflow_id) for e in run]


async def test_5mb_result_read_by_5_steps(client, task_queue, baton_worker, store) -> None:
    flow = baton.new(workflow_name="big").add("root", make_doc, {"size": 5 * MB})
    for i in range(5):
        flow = flow.add(f"reader_{i}", read_docs, deps=["root"])
    async with baton_worker(ALL):
        result = await flow.run(client, task_queue=task_queue)
    want = digest(text_of(5 * MB, "root"))
    assert len(result.results["root"]["doc"]) == 5 * MB
    assert digest(result.results["root"]["doc"]) == want
    assert [result.results[f"reader_{i}"]["read"] for i in range(5)] == [{"root": want}] * 5
    # The document went to the store; history holds claims only.
    assert stored(store)
    assert max(await history_sizes(client, flow.workflow_id)) < 64 * 1024


async def test_fan_in_of_1_5mb_results(client, task_queue, baton_worker, store) -> None:
    flow = baton.new(workflow_name="fan-in")
    names = [f"part_{i}" for i in range(4)]
    for name in names:
        flow = flow.add(name, make_doc, {"size": 3 * MB // 2})
    flow = flow.add("merge", read_docs, deps=names)
    async with baton_worker(ALL):
        result = await flow.run(client, task_queue=task_queue)
    merged = result.results["merge"]
    assert merged["read"] == {n: digest(text_of(3 * MB // 2, n)) for n in names}
    assert sum(merged["sizes"].values()) == 6 * MB


async def test_wide_fan_out_just_under_the_threshold(
    client, task_queue, baton_worker, store
) -> None:
    # Each reader's input and result are a little under the threshold, so each stays in
    # history, and 40 of them (10 MB) are ready at once: scheduled in one workflow task
    # they would exceed Temporal's 4 MB completion limit.
    size = DEFAULT_THRESHOLD - 2000
    width = 40
    flow = baton.new(workflow_name="wide").add("root", make_doc, {"size": size})
    readers = [f"r{i:02d}" for i in range(width)]
    for name in readers:
        flow = flow.add(name, read_docs, {"size": size}, deps=["root"])
    flow = flow.add("all", read_docs, deps=readers)
    async with baton_worker(ALL):
        result = await flow.run(client, task_queue=task_queue)
    root = digest(text_of(size, "root"))
    assert all(result.results[n]["read"] == {"root": root} for n in readers)
    assert result.results["all"]["read"] == {n: digest(text_of(size, n)) for n in readers}
    assert len(result.steps) == width + 2
    # The readers' inputs stayed inline (just under the threshold)...
    sizes = await history_sizes(client, flow.workflow_id)
    assert sum(1 for s in sizes if size < s < DEFAULT_THRESHOLD + 4096) >= 2 * width
    # ...and no workflow task scheduled more than the budget's worth of them.
    per_task: list[int] = []
    for event in [e for run in await run_histories(client, flow.workflow_id) for e in run]:
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            per_task.append(0)
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED and per_task:
            per_task[-1] += event.ByteSize()
    assert max(per_task) < 3 * MB


async def test_flow_result_readable_by_a_plain_client(
    client, task_queue, baton_worker, store
) -> None:
    flow = baton.new(workflow_name="read-back").add("root", make_doc, {"size": MB})
    async with baton_worker(ALL):
        handle = await flow.start(client, task_queue=task_queue)
        await handle.result()
    plain = client.get_workflow_handle(flow.workflow_id)
    # A client without the store sees a claim it cannot read, and says so...
    with pytest.raises(RuntimeError, match="TMPRL1105"):
        await plain.result()
    # ...with the store (what Flow.start, the CLI and BatonPlugin do) it reads the result.
    result = await with_payload_store(client).get_workflow_handle(flow.workflow_id).result()
    assert len(result["results"]["root"]["doc"]) == MB


async def test_big_flow_input_and_postgres_store(
    client, task_queue, baton_worker, postgres_server, monkeypatch
) -> None:
    # The production shape: payloads in PostgreSQL, a 3 MB argument in the flow itself.
    name = f"t_{uuid.uuid4().hex[:16]}"
    monkeypatch.setenv("BATON_PAYLOAD_STORE", postgres_server.create_database(name))
    flow = (
        baton.new(workflow_name="pg")
        .add("root", read_docs, {"blob": text_of(3 * MB, "arg"), "size": 3 * MB})
        .add("next", read_docs, deps=["root"])
    )
    try:
        async with baton_worker(ALL):
            result = await flow.run(client, task_queue=task_queue)
    finally:
        postgres_server.drop_database(name)
    assert result.results["next"]["read"] == {"root": digest(text_of(3 * MB, "root"))}


async def test_pruned_payload_fails_the_run_with_the_reason(
    client, task_queue, baton_worker, store
) -> None:
    flow = baton.new(workflow_name="pruned").add("root", read_docs, {"blob": "x" * MB})
    handle = await flow.start(client, task_queue=task_queue)  # no worker yet
    # What `baton db prune` does to the payload store, run too early.
    before = len(stored(store))
    assert before == 1
    await asyncio.sleep(1.1)  # file times have 1 s resolution on some file systems
    assert await prune_payloads(1, str(store)) == before
    assert stored(store) == []
    async with baton_worker(ALL):
        with pytest.raises(WorkflowFailureError) as info:
            await asyncio.wait_for(handle.result(), 30)
    cause = info.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.type == PAYLOAD_MISSING_ERROR
    assert "pruned" in cause.message and "BATON_PAYLOAD_STORE" in cause.message
    assert (await handle.describe()).status == WorkflowExecutionStatus.FAILED


async def test_continue_as_new_keeps_states_and_results(
    client, task_queue, baton_worker, store
) -> None:
    # A low history limit makes a 60-step flow continue as new several times; one 1 MB
    # result rides along in the carried state (through the store).
    flow = baton.new(workflow_name="long", max_history_events=60, max_concurrency=4)
    flow = flow.add("doc", make_doc, {"size": MB})
    previous = "doc"
    for i in range(20):
        for j in range(3):
            flow = flow.add(f"s{i:02d}_{j}", read_docs, deps=[previous])
        previous = f"s{i:02d}_0"
    async with baton_worker(ALL):
        handle = await flow.start(client, task_queue=task_queue)
        result = await handle.result()
        states = await handle.query("baton.steps")
    assert len(result.results) == 61 and len(result.steps) == 61
    assert all(s.state == "completed" for s in result.steps.values())
    assert set(states) == set(result.steps)
    assert all(s["state"] == "completed" for s in states.values())
    assert len(result.results["doc"]["doc"]) == MB
    assert result.results["s19_2"]["read"] == {}
    assert result.results["s00_1"]["read"] == {"doc": digest(text_of(MB, "doc"))}
    # It really continued as new, and no run's history passed the limit by much.
    first = client.get_workflow_handle(flow.workflow_id, run_id=handle.first_execution_run_id)
    assert (await first.describe()).status == WorkflowExecutionStatus.CONTINUED_AS_NEW
    runs = await run_histories(client, flow.workflow_id)
    assert len(runs) >= 3
    assert all(len(events) < 60 + 6 * 4 + 10 for events in runs), [len(r) for r in runs]


def test_bad_store_settings_fail_at_once(monkeypatch) -> None:
    monkeypatch.setenv("BATON_PAYLOAD_THRESHOLD", str(DEFAULT_THRESHOLD + 1))
    with pytest.raises(PayloadStoreConfigError, match="1024 to 262144"):
        baton.BatonPlugin()
    monkeypatch.setenv("BATON_PAYLOAD_THRESHOLD", "2MB")
    with pytest.raises(PayloadStoreConfigError, match="whole number of bytes"):
        baton.BatonPlugin()
    monkeypatch.delenv("BATON_PAYLOAD_THRESHOLD")
    with pytest.raises(PayloadStoreConfigError, match="postgresql://"):
        external_storage("s3://bucket/x")
    assert external_storage("off") is None
    assert baton.BatonPlugin(payload_store=False).payload_storage is None
    with pytest.raises(ValueError, match="max_history_events"):
        baton.new(workflow_name="x", max_history_events=5)


async def test_cancelling_a_flow_cancels_its_steps_in_flight(
    client, task_queue, baton_worker, store
) -> None:
    from tests.core.steps import timed

    flow = baton.new(workflow_name="cancel").add("slow", timed, {"sleep": 20})
    async with baton_worker([timed]):
        handle = await flow.start(client, task_queue=task_queue)
        for _ in range(100):
            states = await handle.query("baton.steps")
            if states["slow"]["state"] == "running":
                break
            await asyncio.sleep(0.05)
        await handle.cancel()
        with pytest.raises(WorkflowFailureError):
            await asyncio.wait_for(handle.result(), 15)
    assert (await handle.describe()).status == WorkflowExecutionStatus.CANCELED
    kinds = [e.event_type async for e in handle.fetch_history_events()]
    assert EventType.EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED in kinds


async def test_with_encryption_the_store_holds_only_ciphertext(client, task_queue, store) -> None:
    # temporalio runs the codec before the store: what reaches the store is sealed.
    import os

    from temporalio.client import Client as TemporalClient
    from temporalio.worker import Worker

    from baton_temporal import codec

    sealed = codec.data_converter(codec.EncryptionCodec([("k1", os.urandom(32))]))
    config = client.config()
    config["data_converter"] = sealed
    encrypted = TemporalClient(**config)
    flow = baton.new(workflow_name="sealed").add("root", make_doc, {"size": MB})
    flow = flow.add("next", read_docs, deps=["root"])
    plugin = baton.BatonPlugin(steps=ALL)
    async with Worker(encrypted, task_queue=task_queue, plugins=[plugin]):
        result = await flow.run(encrypted, task_queue=task_queue)
    doc = text_of(MB, "root")
    assert result.results["next"]["read"] == {"root": digest(doc)}
    blobs = [p.read_bytes() for p in stored(store)]
    assert blobs and all(b"binary/encrypted" in b for b in blobs)
    assert not any(doc[:64].encode() in b for b in blobs)


async def test_cli_start_and_status_read_big_payloads(
    client, task_queue, baton_worker, store, tmp_path
) -> None:
    # The `baton` CLI is another process: it shares the store through the environment.
    import json

    from tests.cli._util import clean_env, run_baton

    env = clean_env(
        TEMPORAL_ADDRESS=client.service_client.config.target_host,
        BATON_PAYLOAD_STORE=str(store),
    )
    flow = (
        baton.new(workflow_name="cli-big")
        .add("root", make_doc, {"size": MB, "note": "n" * MB})
        .add("next", read_docs, deps=["root"])
    )
    flow_file = tmp_path / "flow.json"
    flow_file.write_text(flow.to_json())
    async with baton_worker(ALL):
        ran = await run_baton(
            "start", str(flow_file), "--task-queue", task_queue, "--wait", "--json", env=env
        )
        assert ran.code == 0, ran
        result = json.loads(ran.out[ran.out.index("{") :])
        assert result["status"] == "completed"
        assert result["results"]["next"]["read"] == {"root": digest(text_of(MB, "root"))}
        # The file holds no id (none was chosen): the run's id is the one start printed.
        ran = await run_baton("status", result["workflow_id"], env=env)
    assert ran.code == 0, ran
    assert "status      COMPLETED" in ran.out
