"""Streams inside steps, on a real Temporal server with a real ledger: a stalled stream
fails its attempt within the step's heartbeat timeout and is retried; a stream cut off
mid-way is retried and the usage reported before the cut is recorded for the cut
attempt; a stream that runs longer than the heartbeat timeout lives on its own
heartbeats as long as events arrive."""

from __future__ import annotations

import time

import pytest
from temporalio.client import Client

import baton_temporal as baton
from baton_temporal.ledger import LedgerStore
from baton_temporal.testing import Fault, StandIn
from tests.ledger_support import ledger_rows

from . import steps

pytestmark = pytest.mark.timeout(90)

MODELS = {
    "anthropic": "claude-sonnet-4-20250514",
    "openai": "gpt-4o",
    "responses": "o3-pro",
}
HEARTBEAT_S = steps.HEARTBEAT_TIMEOUT.total_seconds()


def three_streams(name: str) -> baton.Flow:
    flow = baton.new(workflow_name=name)
    for step, model in MODELS.items():
        flow = flow.add(step, steps.ask, {"model": model, "params": {"stream": True}})
    return flow


def anthropic_input(usage: dict) -> int:
    return (
        usage["input_tokens"]
        + usage["cache_creation_input_tokens"]
        + usage["cache_read_input_tokens"]
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    "fault",
    # After a few text deltas: before the first, an OpenAI model may be thinking in silence
    # (the request timeout applies then, as without streaming).
    [Fault.stream("x" * 400, stall_after=9), Fault.stream("x" * 400, cut_after=9)],
    ids=["stalled", "cut"],
)
async def test_a_broken_stream_is_retried_and_its_reported_usage_recorded(
    fault: Fault,
    client: Client,
    task_queue: str,
    baton_worker,
    store: LedgerStore,
    standin: StandIn,
) -> None:
    for model in MODELS.values():
        standin.script(model, [fault])
    flow = three_streams("broken-stream")
    async with baton_worker(steps.ALL, ledger=store, llm=standin.config(timeout_s=30)):
        result = await flow.run(client, task_queue=task_queue)
    rows = await ledger_rows(store, flow.workflow_id)
    for step, model in MODELS.items():
        # 2 attempts (one more if the loaded test machine missed a heartbeat).
        last_attempt = result.results[step]["attempt"]
        assert last_attempt >= 2 and result.results[step]["streamed"]
        sent = [r for r in standin.requests if r.model == model]
        first, second = sent[0], sent[-1]
        assert first.billed and second.billed and second.outcome == "ok"
        if fault.stream_plan and fault.stream_plan.stall_after is not None:
            # The worker hung up, long before the start-to-close timeout (10 minutes):
            # the step's keep-alive heartbeats, so only the stall limit can end it.
            assert first.outcome == "client_gone"
            assert second.time - first.time < 60, step
        else:
            assert first.outcome == "stream_cut"
        mine = {r["attempt"]: r for r in rows if r["step"] == step}
        assert 1 in mine and last_attempt in mine, (step, rows)
        assert mine[last_attempt]["status"] == "ok"
        assert mine[last_attempt]["cost_usd"] is not None
        if step == "anthropic":
            # message_start reported the input before the break: a priced row, written
            # by the worker that saw the break (a cancelled call would be a lost reply).
            assert first.usage is not None
            assert mine[1]["status"] == "step_failed"
            assert mine[1]["input_tokens"] == anthropic_input(first.usage) > 0
            assert mine[1]["output_tokens"] == first.usage["output_tokens"]
            assert mine[1]["cost_usd"] is not None and mine[1]["cost_usd"] > 0
        else:
            # OpenAI reports usage only at the end: billed, counts unknown, unpriced.
            assert first.usage is None
            assert mine[1]["status"] == "usage_unknown" and mine[1]["cost_usd"] is None
            assert "stream" in (mine[1]["price_note"] or "")  # says why


async def test_a_request_that_needs_streaming_streams_in_a_step_and_is_recorded(
    client: Client, task_queue: str, baton_worker, store: LedgerStore, standin: StandIn
) -> None:
    model = MODELS["anthropic"]
    # max_tokens over the SDK's non-streaming limit: it streams without being asked.
    flow = baton.new(workflow_name="long-stream").add(
        "long", steps.ask, {"model": model, "params": {"max_tokens": 30_000}}
    )
    async with baton_worker(steps.ALL, ledger=store, llm=standin.config(timeout_s=30)):
        result = await flow.run(client, task_queue=task_queue)
    out = result.results["long"]
    assert out["streamed"] and out["api"] == "messages" and out["attempt"] == 1
    (sent,) = standin.requests
    assert sent.body["stream"] is True and sent.outcome == "ok"
    (row,) = await ledger_rows(store, flow.workflow_id)
    assert row["status"] == "ok" and row["output_tokens"] == sent.usage["output_tokens"]
    assert row["input_tokens"] == anthropic_input(sent.usage)


@pytest.mark.slow
async def test_a_plain_activity_heartbeats_as_events_arrive_and_notices_a_stall(
    client: Client, task_queue: str, standin: StandIn
) -> None:
    from temporalio.client import WorkflowFailureError
    from temporalio.worker import Worker

    # The response head held back 2.5 s (the model starting), then 3 s of events 50 ms
    # apart, under a 2 s heartbeat timeout: only the call's own heartbeats keep the
    # activity alive (there is no step keep-alive here).
    model = MODELS["anthropic"]
    standin.set_latency(2.5, model)
    standin.script(model, [Fault.stream("y" * (60 * 16), chunk_delay=0.05)])
    standin.script(model, [Fault.stream("z" * 400, stall_after=9)])
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[steps.StreamPlainly],
        activities=[steps.stream_plainly],
    ):
        started = time.monotonic()
        out = await client.execute_workflow(
            steps.StreamPlainly.run, standin.url, id=f"plain-{task_queue}", task_queue=task_queue
        )
        assert out == {"chars": 60 * 16, "attempt": 1}
        assert time.monotonic() - started > 2 * steps.PLAIN_HEARTBEAT_TIMEOUT.total_seconds()
        standin.set_latency(0.0, model)
        with pytest.raises(WorkflowFailureError) as caught:
            await client.execute_workflow(
                steps.StreamPlainly.run,
                standin.url,
                id=f"stall-{task_queue}",
                task_queue=task_queue,
            )
    # The worker gave up at 1.6 s of silence, before Temporal's 2 s heartbeat timeout.
    cause = caught.value.cause.cause if caught.value.cause else None
    assert cause is not None and "stalled: no data for 1.6 s" in str(cause), caught.value
