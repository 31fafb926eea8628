"""complete() inside a real Temporal activity: the server honours our retry decisions."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

import pytest
from temporalio import activity, workflow
from temporalio.client import Client, WorkflowFailureError
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from baton_temporal.llm import LLMClients, complete
from baton_temporal.testing import Fault, StandIn


@workflow.defn(name="llm-retry-test")
class AskWorkflow:
    @workflow.run
    async def run(self, model: str) -> dict:
        return await workflow.execute_activity(
            "ask",
            model,
            start_to_close_timeout=timedelta(seconds=10),
            # Temporal's own backoff would wait 1 s; the provider's retry-after must win.
            retry_policy=RetryPolicy(initial_interval=timedelta(seconds=5), maximum_attempts=5),
        )


async def _run(client: Client, standin: StandIn, model: str) -> tuple[dict, float]:
    config = standin.config(timeout_s=5)
    task_queue = f"llm-{uuid.uuid4().hex[:8]}"
    async with LLMClients() as clients:

        @activity.defn(name="ask")
        async def ask(model: str) -> dict:
            reply = await complete(
                [{"role": "user", "content": "Assess doc-9"}],
                model=model,
                config=config,
                clients=clients,
            )
            return {"text": reply.text, "attempt": activity.info().attempt}

        async with Worker(
            client,
            task_queue=task_queue,
            workflows=[AskWorkflow],
            activities=[ask],
            workflow_runner=UnsandboxedWorkflowRunner(),
        ):
            started = time.perf_counter()
            result = await client.execute_workflow(
                AskWorkflow.run, model, id=f"llm-{uuid.uuid4()}", task_queue=task_queue
            )
            return result, time.perf_counter() - started


@pytest.mark.slow
async def test_rate_limit_retries_after_the_providers_delay(
    client: Client, standin: StandIn
) -> None:
    standin.script(
        "gpt-4o", [Fault.status(429, retry_after_ms=300), Fault.status(503, retry_after=0.3)]
    )
    result, elapsed = await _run(client, standin, "gpt-4o")
    assert result["attempt"] == 3 and result["text"]
    # Two provider-asked delays of 0.3 s; the policy's own 5 s interval was not used.
    assert 0.6 <= elapsed < 4
    assert standin.billed_calls("gpt-4o") == 1 and len(standin.requests) == 3


@pytest.mark.slow
async def test_refusal_fails_at_once_without_retrying(client: Client, standin: StandIn) -> None:
    standin.script("claude-sonnet-4-20250514", [Fault.status(400, "messages: too long")])
    with pytest.raises(WorkflowFailureError) as caught:
        await _run(client, standin, "claude-sonnet-4-20250514")
    cause = caught.value.cause
    assert isinstance(cause, ActivityError)
    assert isinstance(cause.cause, ApplicationError)
    assert cause.cause.type == "ProviderRejected" and "messages: too long" in str(cause.cause)
    assert len(standin.requests) == 1 and standin.billed_calls() == 0
