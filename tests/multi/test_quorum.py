"""Quorum as documented: a quorum step starts at k of n; stragglers are cancelled (their
billed calls still recorded) or, on request, left to finish. On a real dev server."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime

import pytest
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

import baton_temporal as baton
from baton_temporal import FlowError, multi_model
from baton_temporal.ledger import LedgerStore
from baton_temporal.pricing import GenAIPricesPricer
from baton_temporal.testing import Fault, StandIn
from baton_temporal.testing.postgres import PostgresServer
from tests.ledger_support import ledger_rows

from .quorum_steps import (
    CANCELLED,
    FINISHED,
    STEPS,
    THREAD_DONE,
    QuorumByHand,
    ask_twice,
    audit,
    sync_assess,
    synthesize,
    timed_assess,
)

pytestmark = pytest.mark.timeout(90)

MODELS = ["claude-sonnet-4-20250514", "claude-opus-4-20250514", "gpt-4o"]
SLOW = "gpt-4o"
# Long enough that only a cancellation ends it within the test's bounds.
FOREVER = 120.0


@pytest.fixture(autouse=True)
def _fresh_records() -> None:
    for seen in (CANCELLED, FINISHED, THREAD_DONE):
        seen.clear()


def fan_flow(step=timed_assess, *, sleep=None, **options) -> baton.Flow:
    args = {"sleep": sleep if sleep is not None else {SLOW: FOREVER}, **options.pop("args", {})}
    return baton.new(workflow_name="quorum").pipe(
        multi_model.fan_out,
        "assess",
        step,
        models=MODELS,
        args=args,
        synthesize_with=synthesize,
        **options,
    )


async def until(predicate, what: str, seconds: float = 30) -> None:
    for _ in range(int(seconds / 0.05)):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{what}: not within {seconds} s")


def when(state: baton.StepState) -> float:
    assert state.ended_at is not None
    return datetime.fromisoformat(state.ended_at).timestamp()


# -- building -----------------------------------------------------------------------------


def test_cancel_stragglers_is_carried_in_the_flow_json_only_when_set() -> None:
    plain = fan_flow(quorum=2).to_dict()
    assert all("cancel_stragglers" not in s for s in plain["steps"])
    keep = fan_flow(quorum=2, cancel_stragglers=False)
    assert keep.to_dict()["steps"][-1]["cancel_stragglers"] is False
    assert baton.Flow.from_json(keep.to_json()).node("assess_synthesis").cancel_stragglers is False


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: fan_flow(cancel_stragglers=False), "cancel_stragglers applies only with quorum"),
        (lambda: fan_flow(quorum=2, cancel_stragglers="no"), "must be True or False"),
        (
            lambda: (
                baton.new(workflow_name="x")
                .add("a", audit)
                .add("b", audit, deps=["a"], cancel_stragglers=False)
            ),
            "cancel_stragglers applies only with quorum=k",
        ),
    ],
)
def test_cancel_stragglers_without_a_quorum_is_refused(build, message) -> None:
    with pytest.raises(FlowError, match=message):
        build()


# -- the declared flow --------------------------------------------------------------------


async def test_synthesis_starts_at_k_and_the_straggler_is_cancelled(
    client: Client, task_queue: str, baton_worker
) -> None:
    flow = fan_flow(quorum=2)
    async with baton_worker(STEPS):
        result = await flow.run(client, task_queue=task_queue)
        # The straggler's activity saw the cancellation (through its heartbeat).
        await until(lambda: "assess_gpt_4o" in CANCELLED, "the straggler saw its cancel")
    assert result.results["assess_synthesis"]["models"] == sorted(MODELS[:2])
    straggler = result.steps["assess_gpt_4o"]
    assert straggler.state == "cancelled"
    assert (straggler.error or "").startswith("cancelled: quorum met ('assess_synthesis' started")
    assert "assess_gpt_4o" not in result.results and result.failed == []
    assert "assess_gpt_4o" not in FINISHED
    # The run's history holds the cancellation request.
    history = await client.get_workflow_handle(flow.workflow_id).fetch_history()
    assert any(
        e.HasField("activity_task_cancel_requested_event_attributes") for e in history.events
    )


async def test_a_straggler_holding_the_concurrency_slot_is_cancelled(
    client: Client, task_queue: str, baton_worker
) -> None:
    # max_concurrency=1: the slow model holds the only slot when the quorum is met, and
    # synthesis waits for that slot. Cancelling the straggler frees it.
    flow = fan_flow(quorum=2)
    flow = baton.Flow(flow.spec.model_copy(update={"max_concurrency": 1}))
    async with baton_worker(STEPS):
        result = await flow.run(client, task_queue=task_queue)
    assert result.results["assess_synthesis"]["models"] == sorted(MODELS[:2])
    assert result.steps["assess_gpt_4o"].state == "cancelled"


async def test_stragglers_may_finish_instead(client: Client, task_queue: str, baton_worker) -> None:
    flow = fan_flow(quorum=2, cancel_stragglers=False, sleep={SLOW: 2.0})
    async with baton_worker(STEPS):
        result = await flow.run(client, task_queue=task_queue)
    # Synthesis ran on the first two, and ended before the straggler did.
    assert result.results["assess_synthesis"]["models"] == sorted(MODELS[:2])
    late = result.results["assess_gpt_4o"]
    assert result.results["assess_synthesis"]["at"] < late["end"]
    assert result.steps["assess_gpt_4o"].state == "completed"
    assert "assess_gpt_4o" not in CANCELLED


async def test_a_step_that_needs_the_straggler_keeps_it_running(
    client: Client, task_queue: str, baton_worker
) -> None:
    # "audit" depends on the slow model directly: it must get its result, so the slow
    # model is not cancelled although synthesis started without it.
    flow = fan_flow(quorum=2, sleep={SLOW: 2.0}).add("audit", audit, deps=["assess_gpt_4o"])
    async with baton_worker(STEPS):
        result = await flow.run(client, task_queue=task_queue)
    assert result.results["assess_synthesis"]["models"] == sorted(MODELS[:2])
    assert result.results["assess_synthesis"]["at"] < result.results["assess_gpt_4o"]["end"]
    assert result.results["audit"]["saw"] == ["assess_gpt_4o"]
    assert result.steps["assess_gpt_4o"].state == "completed"


async def test_quorum_out_of_reach_cancels_synthesis_without_waiting(
    client: Client, task_queue: str, baton_worker
) -> None:
    # Two models down and one slow: with quorum=2 synthesis can never run. It is cancelled
    # as soon as that is certain; the slow model is not a straggler of a met quorum, so it
    # runs on, and the run fails naming all of it.
    flow = fan_flow(quorum=2, sleep={SLOW: 2.0}, args={"down": MODELS[:2]})
    async with baton_worker(STEPS):
        handle = await flow.start(client, task_queue=task_queue)
        with pytest.raises(WorkflowFailureError) as info:
            await handle.result()
        states = await handle.query("baton.steps")
    err = info.value.cause
    assert isinstance(err, ApplicationError) and err.type == "FlowFailed"
    assert err.details[0] == {
        "failed": ["assess_sonnet_4", "assess_opus_4"],
        "cancelled": ["assess_synthesis"],
    }
    synthesis_error = states["assess_synthesis"]["error"]
    assert "quorum 2 of 3 not met (0 completed)" in synthesis_error
    assert "assess_gpt_4o (running)" in synthesis_error  # decided before the slow one ended
    assert states["assess_gpt_4o"]["state"] == "completed"


async def test_all_models_finishing_together(client: Client, task_queue: str, baton_worker) -> None:
    flow = fan_flow(quorum=2, sleep={})
    async with baton_worker(STEPS):
        result = await flow.run(client, task_queue=task_queue)
    models = result.results["assess_synthesis"]["models"]
    assert len(models) >= 2 and set(models) <= set(MODELS)
    for name in ("assess_sonnet_4", "assess_opus_4", "assess_gpt_4o"):
        state = result.steps[name]
        assert state.state == "completed" or (state.error or "").startswith("cancelled: quorum")
    assert result.failed == []


async def test_a_straggler_that_ignores_cancellation_does_not_hold_the_flow(
    client: Client, task_queue: str, baton_worker
) -> None:
    # A sync step runs in a thread, which nothing can interrupt: the flow still ends at k.
    flow = fan_flow(sync_assess, quorum=2, sleep={SLOW: 8.0})
    async with baton_worker(STEPS):
        result = await flow.run(client, task_queue=task_queue)
        assert not THREAD_DONE["assess_gpt_4o"].is_set(), "the flow waited for the thread"
        await asyncio.to_thread(THREAD_DONE["assess_gpt_4o"].wait, 30)
    assert result.steps["assess_gpt_4o"].state == "cancelled"
    assert result.results["assess_synthesis"]["models"] == sorted(MODELS[:2])


async def test_billed_calls_of_a_cancelled_straggler_are_recorded(
    client: Client, task_queue: str, postgres_server: PostgresServer
) -> None:
    store = LedgerStore.from_url(
        postgres_server.create_database(f"q_{uuid.uuid4().hex[:12]}"), pricer=GenAIPricesPricer()
    )
    await store.migrate()
    flow = fan_flow(ask_twice, quorum=2)
    async with StandIn() as standin:
        # gpt-4o answers its first call, then takes "forever" over the second.
        standin.script(SLOW, [Fault.ok(), Fault.slow(FOREVER)])
        plugin = baton.BatonPlugin(steps=STEPS, ledger=store, llm=standin.config())
        async with Worker(client, task_queue=task_queue, plugins=[plugin]):
            result = await flow.run(client, task_queue=task_queue)
            await until(lambda: "assess_gpt_4o" in CANCELLED, "the straggler saw its cancel")
            rows = []

            async def straggler_rows() -> bool:
                rows[:] = [
                    r
                    for r in await ledger_rows(store, flow.workflow_id)
                    if r["step"] == "assess_gpt_4o"
                ]
                return len(rows) >= 2

            for _ in range(100):
                if await straggler_rows():
                    break
                await asyncio.sleep(0.1)
        billed = standin.billed_calls(SLOW)
    await store.close()
    assert result.steps["assess_gpt_4o"].state == "cancelled"
    # One call was answered before the cancel: recorded as the failed attempt's; the one
    # cut short got no reply, but the provider billed it (it had accepted the request):
    # a lost reply (input estimated). Billed and recorded agree.
    assert billed == 2
    assert sorted((r["model"], r["status"], r["attempt"]) for r in rows) == [
        ("gpt-4o", "lost_reply", 1),
        ("gpt-4o", "step_failed", 1),
    ]


# -- run_fan_out in a hand-written workflow ------------------------------------------------


async def test_run_fan_out_returns_at_k_and_cancels_the_rest(
    client: Client, task_queue: str, baton_worker
) -> None:
    params = {"models": MODELS, "quorum": 2, "args": {"sleep": {SLOW: FOREVER}}}
    wf_id = f"hand-{uuid.uuid4().hex[:8]}"
    async with baton_worker(STEPS, workflows=[QuorumByHand]):
        out = await client.execute_workflow(
            QuorumByHand.run, params, id=wf_id, task_queue=task_queue
        )
        await until(lambda: "assess_gpt_4o" in CANCELLED, "the straggler saw its cancel")
    assert out["quorum"] == sorted(MODELS[:2])
    assert out["stragglers"] == [SLOW]


async def test_run_fan_out_can_let_stragglers_finish(
    client: Client, task_queue: str, baton_worker
) -> None:
    params = {"models": MODELS, "quorum": 2, "cancel": False, "args": {"sleep": {SLOW: 2.0}}}
    async with baton_worker(STEPS, workflows=[QuorumByHand]):
        out = await client.execute_workflow(
            QuorumByHand.run, params, id=f"hand-{uuid.uuid4().hex[:8]}", task_queue=task_queue
        )
    assert out["quorum"] == sorted(MODELS[:2]) and out["stragglers"] == [SLOW]
    assert out["all"] == sorted(MODELS)
    assert out["at"] < FINISHED["assess_gpt_4o"]  # returned before the straggler ended
    assert "assess_gpt_4o" not in CANCELLED


async def test_run_fan_out_quorum_out_of_reach(
    client: Client, task_queue: str, baton_worker
) -> None:
    params = {
        "models": MODELS,
        "quorum": 2,
        "args": {"down": MODELS[:2], "sleep": {SLOW: FOREVER}},
    }
    async with baton_worker(STEPS, workflows=[QuorumByHand]):
        with pytest.raises(WorkflowFailureError) as info:
            await client.execute_workflow(
                QuorumByHand.run, params, id=f"hand-{uuid.uuid4().hex[:8]}", task_queue=task_queue
            )
    err = info.value.cause
    assert isinstance(err, ApplicationError) and err.type == "FanOutFailed"
    assert "0 of 3 models succeeded, 2 needed" in err.message
    assert err.details[0] == {"failed": MODELS[:2], "cancelled": [SLOW]}


async def test_run_fan_out_refuses_a_quorum_above_the_models(
    client: Client, task_queue: str, baton_worker
) -> None:
    params = {"models": MODELS, "quorum": 4}
    async with baton_worker(STEPS, workflows=[QuorumByHand]):
        with pytest.raises(WorkflowFailureError) as info:
            await client.execute_workflow(
                QuorumByHand.run, params, id=f"hand-{uuid.uuid4().hex[:8]}", task_queue=task_queue
            )
    err = info.value.cause
    assert isinstance(err, ApplicationError) and err.type == "FanOutFailed"
    assert "quorum must be a whole number from 1 to 3" in err.message


def test_a_dependency_waiting_for_a_worker_still_counts_towards_the_quorum() -> None:
    from types import SimpleNamespace

    from baton_temporal.workflow._quorum import QuorumTracker

    flow = fan_flow(quorum=2)
    states = {s.name: SimpleNamespace(state="pending", error=None) for s in flow.spec.steps}
    tracker = QuorumTracker(flow.spec, states)
    synthesis = flow.node("assess_synthesis")
    states["assess_sonnet_4"].state = "completed"
    states["assess_opus_4"].state = "failed"
    states["assess_gpt_4o"].state = "waiting"  # a rollout: it may still complete
    assert not tracker.decided(synthesis)
    states["assess_gpt_4o"].state = "failed"
    assert tracker.decided(synthesis)  # now out of reach
    # A waiting straggler is cancelled like a running one.
    states["assess_opus_4"].state, states["assess_gpt_4o"].state = "completed", "waiting"
    stopped: list[str] = []
    assert tracker.started(synthesis, cancel=stopped.append) == ["assess_gpt_4o"] == stopped


# -- quorum in the scheduler: continue-as-new, one slot, rolling deploys -------------------


def chain_then_quorum(*, max_concurrency: int | None, cancel: bool | None = None) -> baton.Flow:
    """Four chained steps (to fill a short history), three models, a quorum 2 of 3 and a
    step after it; the third model is slow."""
    flow = baton.new(
        workflow_name="quorum-can", max_history_events=20, max_concurrency=max_concurrency
    )
    previous: list[str] = []
    for i in range(4):
        flow = flow.add(f"c{i}", audit, deps=previous)
        previous = [f"c{i}"]
    sleep = {"slow": FOREVER if cancel is not False else 2.0}
    for model in ("m1", "m2", "slow"):
        flow = flow.add(
            model, timed_assess, {"workflow_model": model, "sleep": sleep}, deps=previous
        )
    flow = flow.add("q", audit, deps=["m1", "m2", "slow"], quorum=2, cancel_stragglers=cancel)
    return flow.add("after", audit, deps=["q"])


async def runs_of(client: Client, workflow_id: str, first_run_id: str) -> list[list]:
    """Each run's history events, first to last, following continue-as-new."""
    runs, run_id = [], first_run_id
    while run_id:
        history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        runs.append(list(history.events))
        last = history.events[-1]
        run_id = (
            last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
            if last.HasField("workflow_execution_continued_as_new_event_attributes")
            else ""
        )
    return runs


@pytest.mark.parametrize("max_concurrency", [None, 1])
async def test_quorum_across_continue_as_new(
    client: Client, task_queue: str, baton_worker, max_concurrency: int | None
) -> None:
    # max_history_events=20 makes the run continue as new several times around the
    # quorum: the cancelled straggler and the met quorum must be carried across.
    flow = chain_then_quorum(max_concurrency=max_concurrency)
    async with baton_worker(STEPS):
        handle = await flow.start(client, task_queue=task_queue)
        result = await asyncio.wait_for(handle.result(), 60)
    runs = await runs_of(client, flow.workflow_id, handle.first_execution_run_id)
    assert len(runs) >= 3, [len(r) for r in runs]
    assert result.results["q"]["saw"] == ["m1", "m2"]
    assert result.results["after"]["saw"] == ["q"]
    slow = result.steps["slow"]
    assert slow.state == "cancelled"
    assert (slow.error or "").startswith("cancelled: quorum met ('q' started with 2 of 3")
    assert result.failed == [] and "slow" not in FINISHED
    assert {n: s.state for n, s in result.steps.items() if n != "slow"} == {
        n: "completed" for n in ("c0", "c1", "c2", "c3", "m1", "m2", "q", "after")
    }


async def test_quorum_across_continue_as_new_letting_stragglers_finish(
    client: Client, task_queue: str, baton_worker
) -> None:
    flow = chain_then_quorum(max_concurrency=None, cancel=False)
    async with baton_worker(STEPS):
        handle = await flow.start(client, task_queue=task_queue)
        result = await asyncio.wait_for(handle.result(), 60)
    runs = await runs_of(client, flow.workflow_id, handle.first_execution_run_id)
    assert len(runs) >= 2
    # q may start at 2 of 3, or (when the run was draining to continue as new while the
    # straggler ran: no step starts then) in the next run with all three.
    assert {"m1", "m2"} <= set(result.results["q"]["saw"])
    assert result.steps["slow"].state == "completed" and "slow" not in CANCELLED
    assert all(s.state == "completed" for s in result.steps.values())


async def test_a_straggler_waiting_for_a_worker_that_registers_it_is_cancelled(
    client: Client, task_queue: str, baton_worker
) -> None:
    # Mid-rollout: the third dependency names a step no worker registers yet, so it waits
    # (with backoff, up to a minute here). The quorum is met by the other two: it is
    # cancelled as a straggler instead of holding the flow for the whole wait.
    flow = (
        baton.new(workflow_name="quorum-rollout")
        .add("m1", timed_assess, {"workflow_model": "m1"})
        .add("m2", timed_assess, {"workflow_model": "m2", "sleep": {"m2": 2.0}})
        .add("m3", "assess_from_the_next_release")
        .add("q", audit, deps=["m1", "m2", "m3"], quorum=2)
    )
    async with baton_worker(STEPS, unregistered_step_wait=60):
        handle = await flow.start(client, task_queue=task_queue)
        # While m2 sleeps, m3 shows as waiting for a worker.
        for _ in range(100):
            states = await handle.query("baton.steps")
            if states["m3"]["state"] == "waiting":
                break
            await asyncio.sleep(0.05)
        assert states["m3"]["state"] == "waiting", states["m3"]
        assert "assess_from_the_next_release" in states["m3"]["error"]
        result = await asyncio.wait_for(handle.result(), 30)
    assert result.results["q"]["saw"] == ["m1", "m2"]
    m3 = result.steps["m3"]
    assert m3.state == "cancelled"
    assert (m3.error or "").startswith("cancelled: quorum met ('q' started with 2 of 3")
    assert result.failed == []


async def test_a_quorum_step_may_itself_be_a_straggler(
    client: Client, task_queue: str, baton_worker
) -> None:
    # q1 (2 of a, b, slow) feeds q2 (2 of q1, d, e). One slot, a short history: a and b
    # meet q1's quorum (slow is cancelled before it starts); d and e then meet q2's while
    # q1 still waits for the slot, so q1, needed by nothing else, is cancelled too.
    flow = (
        baton.new(workflow_name="nested", max_history_events=20, max_concurrency=1)
        .add("a", timed_assess, {"workflow_model": "a", "sleep": {"a": 0.3}})
        .add("b", timed_assess, {"workflow_model": "b", "sleep": {"b": 0.3}})
        .add("slow", timed_assess, {"workflow_model": "slow", "sleep": {"slow": FOREVER}})
        .add("q1", audit, deps=["a", "b", "slow"], quorum=2)
        .add("d", timed_assess, {"workflow_model": "d"})
        .add("e", timed_assess, {"workflow_model": "e"})
        .add("q2", audit, deps=["q1", "d", "e"], quorum=2)
    )
    async with baton_worker(STEPS):
        result = await asyncio.wait_for(flow.run(client, task_queue=task_queue), 60)
    assert result.results["q2"]["saw"] == ["d", "e"]
    for name, by in (("slow", "q1"), ("q1", "q2")):
        state = result.steps[name]
        assert state.state == "cancelled"
        assert (state.error or "").startswith(f"cancelled: quorum met ({by!r} started with 2 of 3")
    assert "slow" not in CANCELLED, "it never started"
    assert result.failed == []
