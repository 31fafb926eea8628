"""Retries mean what they say: partial retry specs merge over the library's defaults, the
library's own deterministic errors fail at once, the user's own errors are retried."""

from __future__ import annotations

import collections
import uuid
from datetime import timedelta
from typing import Any

import pytest
from temporalio.client import Client, WorkflowFailureError
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

import baton_temporal as baton
from baton_temporal import multi_model

pytestmark = pytest.mark.timeout(90)

CALLS: collections.Counter[tuple[str, str]] = collections.Counter()


def count(job: baton.Job) -> None:
    CALLS[(job.workflow_id, job.step)] += 1


@baton.step
async def always_fails(job: baton.Job) -> dict:
    count(job)
    raise RuntimeError("the provider is down (a retryable error of the user's)")


@baton.step
async def user_value_error(job: baton.Job) -> dict:
    count(job)
    raise ValueError("a user's ValueError: retried unless the user says otherwise")


@baton.step
async def median_of_missing(job: baton.Job) -> dict:
    count(job)
    return multi_model.median_of({"gpt-4o": {"score": "high"}}, "score")


@baton.step
async def not_a_synthesis(job: baton.Job) -> dict:
    count(job)
    return multi_model.collect_fan_results(job)


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no text for you")


@baton.step
async def raises_unprintable(job: baton.Job) -> dict:
    count(job)
    raise Unprintable()


@baton.step
async def raises_with_unsendable_details(job: baton.Job) -> dict:
    count(job)
    raise ApplicationError("with details", object())


@baton.step
async def returns_a_cycle(job: baton.Job) -> dict:
    count(job)
    loop: dict[str, Any] = {}
    loop["self"] = loop
    return loop


STEPS = [
    always_fails,
    user_value_error,
    median_of_missing,
    not_a_synthesis,
    raises_unprintable,
    raises_with_unsendable_details,
    returns_a_cycle,
]

# Quick retries, so that a step retried 10 times fails in about a second.
FAST = {"initial_interval": 0.05, "maximum_interval": 0.05}


def json_flow(step: str, options: dict[str, Any] | None = None) -> dict[str, Any]:
    node: dict[str, Any] = {"name": "s", "step": step}
    if options is not None:
        node["options"] = options
    return {"baton_flow": 1, "workflow_name": "retries", "steps": [node]}


async def failure_of(client: Client, data: Any, task_queue: str) -> tuple[ApplicationError, int]:
    """Start ``data`` raw (no build-time merge), wait for its failure: (step error, calls)."""
    workflow_id = f"retries-{uuid.uuid4().hex[:10]}"
    handle = await client.start_workflow(
        baton.FLOW_WORKFLOW_TYPE,
        data,
        id=workflow_id,
        task_queue=task_queue,
        execution_timeout=timedelta(seconds=60),
    )
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    history = await handle.fetch_history()
    failures = [
        e.activity_task_failed_event_attributes.failure
        for e in history.events
        if e.HasField("activity_task_failed_event_attributes")
    ]
    assert len(failures) == 1
    error = await client.data_converter.decode_failure(failures[0])
    assert isinstance(error, ApplicationError)
    return error, CALLS[(workflow_id, "s")]


async def test_a_partial_retry_spec_means_ten_attempts_in_the_workflow(
    client: Client, task_queue: str, baton_worker
) -> None:  # type: ignore[no-untyped-def]
    async with baton_worker(STEPS, ledger=False):
        error, calls = await failure_of(
            client, json_flow("always_fails", {"retry": FAST}), task_queue
        )
        # Said explicitly, a limit is kept.
        _, three = await failure_of(
            client,
            json_flow("always_fails", {"retry": {**FAST, "maximum_attempts": 3}}),
            task_queue,
        )
    assert calls == baton.flow.DEFAULT_RETRY.maximum_attempts == 10
    assert three == 3
    assert error.type == "RuntimeError" and not error.non_retryable


async def test_the_users_own_errors_stay_retryable(
    client: Client, task_queue: str, baton_worker
) -> None:  # type: ignore[no-untyped-def]
    flow = baton.new(workflow_name="retries").add(
        "s",
        user_value_error,
        retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=50), maximum_attempts=3),
    )
    async with baton_worker(STEPS, ledger=False):
        error, calls = await failure_of(client, flow.to_dict(), task_queue)
    assert calls == 3
    assert error.type == "ValueError" and not error.non_retryable


@pytest.mark.parametrize(
    ("step", "error_type", "fix"),
    [
        ("median_of_missing", "FanInError", "check the field name"),
        ("not_a_synthesis", "FanInError", "use it in the synthesize_with step of fan_out"),
        ("raises_unprintable", "UnprintableError", "fix Unprintable.__str__"),
        ("raises_with_unsendable_details", "UnprintableError", "pass only JSON values"),
        ("returns_a_cycle", "StepResultError", "['self'] contains itself"),
    ],
)
async def test_the_librarys_deterministic_errors_fail_on_the_first_attempt(
    client: Client, task_queue: str, baton_worker, step: str, error_type: str, fix: str
) -> None:  # type: ignore[no-untyped-def]
    # Unlimited attempts: only a non-retryable error can end this run promptly. Before,
    # the unprintable ones waited out the 30 s heartbeat timeout on every attempt.
    async with baton_worker(STEPS, ledger=False):
        error, calls = await failure_of(
            client, json_flow(step, {"retry": {**FAST, "maximum_attempts": 0}}), task_queue
        )
    assert calls == 1
    assert error.type == error_type and error.non_retryable
    assert fix in error.message


def test_fan_in_error_is_a_value_error() -> None:
    # Code that caught ValueError from the helpers keeps working.
    assert issubclass(multi_model.FanInError, ValueError)
    with pytest.raises(multi_model.FanInError, match="check the field name"):
        multi_model.majority_vote({"a": {}}, "label")
