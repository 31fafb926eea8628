"""The generic DAG workflow on a real Temporal dev server."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from datetime import timedelta

import pytest
from temporalio import activity
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.worker import Replayer, Worker

import baton_temporal as baton

from .steps import ALL, broken, flaky, not_a_dict, peeker, rejects, sync_timed, timed


def overlap(a: dict, b: dict) -> bool:
    return a["start"] < b["end"] and b["start"] < a["end"]


async def failure_of(flow: baton.Flow, client: Client, task_queue: str) -> ApplicationError:
    with pytest.raises(WorkflowFailureError) as info:
        await flow.run(client, task_queue=task_queue)
    cause = info.value.cause
    assert isinstance(cause, ApplicationError)
    return cause


async def test_diamond_runs_middle_steps_concurrently(client, task_queue, baton_worker) -> None:
    flow = (
        baton.new(workflow_name="brief")
        .add("fetch", timed, {"url": "https://example.org"})
        .add("summarize", timed, {"sleep": 0.5}, deps=["fetch"])
        .add("keywords", sync_timed, {"sleep": 0.5}, deps=["fetch"])
        .add("credibility", timed, {"sleep": 0.5}, deps=["fetch"], ignore_failed=True)
        .add("compile", timed, deps=["summarize", "keywords", "credibility"])
    )
    async with baton_worker(ALL):
        result = await flow.run(client, task_queue=task_queue)
    r = result.results
    assert set(r) == {"fetch", "summarize", "keywords", "credibility", "compile"}
    middle = [r["summarize"], r["keywords"], r["credibility"]]
    for i, a in enumerate(middle):
        for b in middle[i + 1 :]:
            assert overlap(a, b), (a, b)
        assert a["start"] >= r["fetch"]["end"]
        assert a["end"] <= r["compile"]["start"]
    # Each step saw exactly its dependencies' results.
    assert r["fetch"]["saw"] == []
    assert r["summarize"]["saw"] == r["keywords"]["saw"] == ["fetch"]
    assert r["compile"]["saw"] == ["credibility", "keywords", "summarize"]
    assert all(s.state == "completed" and s.attempt == 1 for s in result.steps.values())
    assert result.workflow_id == flow.workflow_id


async def test_max_concurrency_bounds_running_steps(client, task_queue, baton_worker) -> None:
    flow = baton.new(workflow_name="serial", max_concurrency=1)
    for name in ("a", "b", "c"):
        flow = flow.add(name, timed, {"sleep": 0.2})
    async with baton_worker(ALL):
        r = (await flow.run(client, task_queue=task_queue)).results
    spans = sorted((x["start"], x["end"]) for x in r.values())
    assert all(prev[1] <= nxt[0] for prev, nxt in itertools.pairwise(spans))


async def test_cascade_cancels_dependents_and_names_them(client, task_queue, baton_worker) -> None:
    flow = (
        baton.new(workflow_name="cascade")
        .add("a", broken)
        .add("b", timed, deps=["a"])
        .add("c", timed, deps=["b"])
        .add("independent", timed)
    )
    async with baton_worker(ALL):
        err = await failure_of(flow, client, task_queue)
        handle = client.get_workflow_handle(flow.workflow_id)
        states = await handle.query("baton.steps")
    assert err.type == "FlowFailed" and err.non_retryable
    assert "step 'a' failed" in err.message and "a is broken on purpose" in err.message
    assert "cancelled because a dependency did not complete: b, c" in err.message
    assert err.details == ({"failed": ["a"], "cancelled": ["b", "c"]},)
    assert {k: v["state"] for k, v in states.items()} == {
        "a": "failed",
        "b": "cancelled",
        "c": "cancelled",
        "independent": "completed",
    }


async def test_ignore_failed_lets_the_dependent_run(client, task_queue, baton_worker) -> None:
    flow = (
        baton.new(workflow_name="brief")
        .add("fetch", timed)
        .add("credibility", broken, deps=["fetch"])
        .add("compile", timed, deps=["fetch", "credibility"], ignore_failed=True)
    )
    async with baton_worker(ALL):
        result = await flow.run(client, task_queue=task_queue)
    assert result.failed == ["credibility"]
    assert result.steps["credibility"].state == "failed"
    assert (
        result.steps["credibility"].error
        and "broken on purpose" in result.steps["credibility"].error
    )
    assert result.results["compile"]["saw"] == ["fetch"]


async def test_ignore_failed_does_not_cover_cancelled(client, task_queue, baton_worker) -> None:
    flow = (
        baton.new(workflow_name="x")
        .add("a", broken)
        .add("b", timed, deps=["a"])
        .add("c", timed, deps=["b"], ignore_failed=True)
        .add("d", timed, deps=["b"], ignore_cancelled=True)
    )
    async with baton_worker(ALL):
        err = await failure_of(flow, client, task_queue)
    # c only ignores failures, so b's cancellation cancels it; d ignores cancellation.
    assert err.details[0] == {"failed": ["a"], "cancelled": ["b", "c"]}


async def test_ignore_cancelled_completes_the_run(client, task_queue, baton_worker) -> None:
    flow = (
        baton.new(workflow_name="x")
        .add("a", broken)
        .add("b", timed, deps=["a"], ignore_failed=True)
        .add("c", timed, deps=["b"])
    )
    async with baton_worker(ALL):
        result = await flow.run(client, task_queue=task_queue)
    assert result.failed == ["a"] and result.results["c"]["saw"] == ["b"]


async def test_retries_then_succeeds(client, task_queue, baton_worker) -> None:
    flow = baton.new(workflow_name="x").add("f", flaky, {"fail_times": 2})
    async with baton_worker(ALL):
        result = await flow.run(client, task_queue=task_queue)
    assert result.results["f"] == {"attempt": 3}
    assert result.steps["f"].attempt == 3


@pytest.mark.parametrize(
    ("step", "args", "error_type", "text"),
    [
        ("no_such_step", {}, "UnknownStep", "no step named 'no_such_step' is registered"),
        (peeker, {"peek": "elsewhere"}, "NotADependency", "add deps=['elsewhere']"),
        (not_a_dict, {}, "StepResultError", "returned list; a step must return a dict"),
        (rejects, {}, "'s' failed", "input can never work"),
    ],
)
async def test_errors_that_cannot_heal_fail_on_the_first_attempt(
    client, task_queue, baton_worker, step, args, error_type, text
) -> None:
    flow = baton.new(workflow_name="x").add("s", step, args)
    # 0: a step no worker registers fails at once instead of waiting for a rollout.
    async with baton_worker(ALL, unregistered_step_wait=0):
        err = await failure_of(flow, client, task_queue)
        history = await client.get_workflow_handle(flow.workflow_id).fetch_history()
    assert f"{error_type}: " in err.message, err.message
    assert text in err.message
    started = [e for e in history.events if e.HasField("activity_task_started_event_attributes")]
    assert [e.activity_task_started_event_attributes.attempt for e in started] == [1]


@activity.defn(name="plain_activity")
async def plain_activity(arg: dict) -> str:
    return "not a step output"


async def test_a_plain_activity_named_as_a_step_fails_the_flow_clearly(
    client: Client, task_queue: str
) -> None:
    # A flow may name its steps by string; if that name is a plain @activity.defn, its
    # result is not a step output: the run must fail with the fix, not retry forever.
    flow = baton.new(workflow_name="x").add("s", "plain_activity")
    plugin = baton.BatonPlugin(steps=ALL)
    async with Worker(client, task_queue=task_queue, plugins=[plugin], activities=[plain_activity]):
        err = await asyncio.wait_for(failure_of(flow, client, task_queue), 30)
    assert err.type == "StepResultError", err
    assert "activity 'plain_activity' returned str, not a baton step output" in err.message
    assert "@baton.step" in err.message


async def test_result_over_the_payload_limit_fails_at_once(
    client, task_queue, baton_worker
) -> None:
    @baton.step
    async def huge(job: baton.Job) -> dict:
        return {"blob": "x" * (3 * 1024 * 1024)}

    # Only with the payload store off: with it (the default) a big result is normal data.
    flow = baton.new(workflow_name="x").add("h", huge)
    async with baton_worker([huge], payload_store=False):
        err = await failure_of(flow, client, task_queue)
    assert "Temporal refuses payloads over 2 MB" in err.message
    assert "Turn on baton's payload store" in err.message


async def test_query_shows_live_states(client, task_queue, baton_worker) -> None:
    flow = (
        baton.new(workflow_name="x")
        .add("slow", timed, {"sleep": 1.5})
        .add("after", timed, deps=["slow"])
    )
    async with baton_worker(ALL):
        handle = await flow.start(client, task_queue=task_queue)
        states: dict = {}
        for _ in range(50):
            states = await handle.query("baton.steps")
            if states["slow"]["state"] == "running":
                break
            await asyncio.sleep(0.05)
        assert states["slow"]["state"] == "running" and states["slow"]["started_at"]
        assert states["after"]["state"] == "pending"
        await handle.result()
        final = await handle.query("baton.steps")
    assert {v["state"] for v in final.values()} == {"completed"}


async def test_malformed_flow_input_fails_the_run_at_once(client, task_queue, baton_worker) -> None:
    async with baton_worker(ALL):
        handle = await client.start_workflow(
            baton.FLOW_WORKFLOW_TYPE,
            {
                "baton_flow": 1,
                "workflow_name": "x",
                "steps": [{"name": "a", "step": "timed", "deps": ["zz"]}],
            },
            id=f"bad-{uuid.uuid4()}",
            task_queue=task_queue,
        )
        with pytest.raises(WorkflowFailureError) as info:
            await asyncio.wait_for(handle.result(), 20)
    cause = info.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "InvalidFlow"
    assert "depends on 'zz', which is not a step of this flow" in cause.message


async def test_steps_heartbeat_on_their_own(client, task_queue, baton_worker) -> None:
    # A 2.5 s step with a 1 s heartbeat timeout only survives if something heartbeats.
    flow = baton.new(workflow_name="x").add(
        "long",
        timed,
        {"sleep": 2.5},
        options=baton.StepOptions(heartbeat_timeout=timedelta(seconds=1)),
    )
    async with baton_worker(ALL):
        result = await flow.run(client, task_queue=task_queue)
    assert result.steps["long"].attempt == 1


async def test_local_steps_give_the_same_results(client, task_queue, baton_worker) -> None:
    flow = (
        baton.new(workflow_name="x")
        .add("a", timed, {"value": 1}, local=True)
        .add("b", timed, deps=["a"], local=True)
    )
    async with baton_worker(ALL):
        result = await flow.run(client, task_queue=task_queue)
    assert result.results["b"]["saw"] == ["a"] and result.results["a"]["value"] == 1


async def test_histories_replay_without_nondeterminism(client, task_queue, baton_worker) -> None:
    # The generic workflow runs outside the sandbox for speed; replaying real histories
    # (fan-in, retries, a tolerated failure, a cascade) is what keeps it honest.
    flow = (
        baton.new(workflow_name="replayed")
        .add("fetch", timed, {"url": "https://example.org"})
        .add("retried", flaky, {"fail_times": 1}, deps=["fetch"])
        .add("failing", broken, deps=["fetch"])
        .add("tolerant", timed, deps=["retried", "failing"], ignore_failed=True)
        .add("skipped", timed, deps=["failing"])
    )
    async with baton_worker(ALL):
        handle = await flow.start(client, task_queue=task_queue)
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        history = await handle.fetch_history()
    assert len(history.events) > 20
    replayer = Replayer(workflows=[], plugins=[baton.BatonPlugin(steps=ALL, ledger=False)])
    replayed = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert replayed.replay_failure is None, replayed.replay_failure
