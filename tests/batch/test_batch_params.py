"""A batch step's call options that are not request fields (stream=, stall_timeout=,
api=): real Temporal dev server, the stand-in's batch APIs through the real SDK clients."""

from __future__ import annotations

from typing import Any

import pytest
from temporalio.client import Client, WorkflowFailureError

import baton_temporal as baton
from baton_temporal import multi_model
from baton_temporal.testing import StandIn

from .param_steps import (
    PARAM_STEPS,
    fails_on_deferred,
    gathered_leniently,
    responses_ask,
    streamed_ask,
)
from .test_batch import FAST


async def test_stream_and_stall_timeout_are_not_sent_in_a_batch(
    client: Client, task_queue: str, baton_worker: Any, standin: StandIn
) -> None:
    flow = baton.new(workflow_name="batch-stream").pipe(
        multi_model.fan_out,
        "s",
        streamed_ask,
        models=["claude-sonnet-4-20250514", "gpt-4o"],
        batch=FAST,
    )
    async with baton_worker(PARAM_STEPS, llm=standin.config()):
        result = await flow.run(client, task_queue=task_queue)
    assert not result.failed
    assert {r["tier"] for r in result.results.values()} == {"batch"}
    bodies = [r["body"] for b in standin.batch.batches for r in b.requests]
    assert len(bodies) == 2
    for body in bodies:
        # A batch request with stream: true is refused by both providers; stall_timeout
        # and api are baton's own options, unknown to them.
        assert not {"stream", "stall_timeout", "api"} & set(body), body


@pytest.mark.parametrize("model", ["gpt-4o", "o3-pro"])
async def test_a_responses_call_in_a_batch_fan_out_fails_naming_the_fix(
    client: Client, task_queue: str, baton_worker: Any, standin: StandIn, model: str
) -> None:
    # gpt-4o asks for the Responses API with api=; o3-pro is served only there.
    flow = baton.new(workflow_name="batch-responses").pipe(
        multi_model.fan_out, "r", responses_ask, models=[model], batch=FAST
    )
    async with baton_worker(PARAM_STEPS, llm=standin.config()):
        with pytest.raises(WorkflowFailureError) as caught:
            await flow.run(client, task_queue=task_queue)
    text = str(caught.value.cause)
    assert "BatchUnsupported" in text and "Chat Completions endpoint only" in text
    assert "drop batch=True" in text
    assert standin.batch.batches == []  # refused before anything was submitted


async def test_a_step_that_catches_the_deferral_is_still_batched(
    client: Client, task_queue: str, baton_worker: Any, standin: StandIn
) -> None:
    flow = (
        baton.new(workflow_name="batch-lenient")
        .pipe(multi_model.fan_out, "g", gathered_leniently, models=["gpt-4o"], batch=FAST)
        .pipe(multi_model.fan_out, "f", fails_on_deferred, models=["gpt-4o"], batch=FAST)
    )
    async with baton_worker(PARAM_STEPS, llm=standin.config()):
        result = await flow.run(client, task_queue=task_queue)
    assert not result.failed
    texts = result.results["g_gpt_4o"]["texts"]
    assert len(texts) == 2 and all(isinstance(t, str) and t for t in texts)
    assert isinstance(result.results["f_gpt_4o"]["text"], str)
    assert sum(len(b.requests) for b in standin.batch.batches) == 3


async def test_a_batch_fan_out_under_a_budget_cap_is_refused_naming_the_fix(
    client: Client, task_queue: str, baton_worker: Any, standin: StandIn
) -> None:
    # A batched call is priced only when the batch answers: the cap could not hold it.
    flow = baton.new(workflow_name="batch-capped", budget_usd=1).pipe(
        multi_model.fan_out, "s", streamed_ask, models=["gpt-4o"], batch=FAST
    )
    async with baton_worker(PARAM_STEPS, llm=standin.config()):
        with pytest.raises(WorkflowFailureError) as caught:
            await flow.run(client, task_queue=task_queue)
    text = str(caught.value.cause)
    assert "BudgetUnsupported" in text and "batch fan-out under a budget cap" in text
    assert "drop batch=True for this fan-out, or drop the cap" in text
    assert standin.batch.batches == [] and standin.requests == []  # nothing sent
