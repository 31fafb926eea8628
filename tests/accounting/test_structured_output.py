"""call_llm(output_type=...) in a real flow: the step's result is the model's JSON dump,
every attempt (validation retries included) is one billed ledger row, and exhausted
retries fail the step at once with the model, the error and the fix."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, Field
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError

import baton_temporal as baton
from baton_temporal.ledger import LedgerStore
from baton_temporal.testing import Fault, StandIn
from tests.ledger_support import ledger_rows

from .steps import FAST_RETRY

pytestmark = pytest.mark.timeout(120)


class Grade(BaseModel):
    """A grade for a document."""

    score: int = Field(ge=1, le=10)
    label: str


@baton.step(retry_policy=FAST_RETRY)
async def grade(job: baton.Job) -> Grade:
    """args: model, retries."""
    return await baton.call_llm(
        job,
        [{"role": "user", "content": f"Grade document {job.workflow_id}."}],
        model=job.args["model"],
        output_type=Grade,
        output_retries=job.args.get("retries", 2),
    )


def one(args: dict) -> baton.Flow:
    return baton.new(workflow_name="structured").add("grade", grade, args)


async def test_invalid_replies_are_retried_in_the_step_and_every_attempt_is_billed(
    client: Client, task_queue: str, baton_worker, store: LedgerStore, standin: StandIn
) -> None:
    standin.script("gpt-4o", [Fault.invalid_output({"score": 0, "label": "x"}), Fault.prose()])
    flow = one({"model": "gpt-4o"})
    async with baton_worker([grade], ledger=store, llm=standin.config()):
        result = await flow.run(client, task_queue=task_queue)
    value = result.results["grade"]
    assert Grade.model_validate(value).model_dump(mode="json") == value  # the model's dump
    assert set(value) == {"score", "label"}
    rows = await ledger_rows(store, flow.workflow_id)
    assert [(r["attempt"], r["call_index"], r["status"]) for r in rows] == [
        (1, 0, "ok"),
        (1, 1, "ok"),
        (1, 2, "ok"),
    ]
    assert standin.billed_calls() == 3 == len({r["call_key"] for r in rows})
    assert all(r["cost_usd"] is not None and r["cost_usd"] > 0 for r in rows)


async def test_exhausted_retries_fail_the_step_at_once_naming_model_error_and_fix(
    client: Client, task_queue: str, baton_worker, store: LedgerStore, standin: StandIn
) -> None:
    model = "claude-sonnet-4-20250514"  # forced tool use
    standin.script(model, [Fault.invalid_output({"score": 42})] * 2)
    flow = one({"model": model, "retries": 1})
    async with baton_worker([grade], ledger=store, llm=standin.config()):
        with pytest.raises(WorkflowFailureError) as info:
            await flow.run(client, task_queue=task_queue)
    cause = info.value.cause
    assert isinstance(cause, ApplicationError)
    text = str(cause.message)
    assert "StructuredOutputInvalid" in text and model in text
    assert "score: Input should be less than or equal to 10" in text
    assert "label: Field required" in text and "Fix: raise output_retries" in text
    rows = await ledger_rows(store, flow.workflow_id)
    # Non-retryable: one step attempt, its two calls recorded as a failed attempt's.
    assert [(r["attempt"], r["status"]) for r in rows] == [(1, "step_failed")] * 2
    assert standin.billed_calls() == 2
