"""Bad input that no other test covers (the full table, with the tests that cover the
other rows, is docs/bad-input.md). Each case must fail with a message that names the
problem and the fix, and must never leave a run retrying for ever."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

import baton_temporal as baton
from baton_temporal import FlowError, multi_model
from baton_temporal.llm import LLMConfig
from baton_temporal.pricing import PricingError, pricer_from_env
from baton_temporal.testing import StandIn
from baton_temporal.worker import WorkerSettings, connect, load_steps

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[2]


# ---- steps that misbehave -------------------------------------------------------------


@baton.step
async def no_model(job: baton.Job) -> dict:
    """Calls a model without saying which (and has none configured)."""
    await baton.call_llm(job, [{"role": "user", "content": "hi"}])
    return {}


@baton.step
async def model_from_args(job: baton.Job) -> dict:
    reply = await baton.call_llm(job, [{"role": "user", "content": "hi"}])
    return {"text": reply.text}


@baton.step
async def returns_a_set(job: baton.Job) -> dict:
    return {"tags": {"a", "b"}}


@baton.step
async def returns_bytes_deep(job: baton.Job) -> dict:
    return {"doc": {"pages": [{"raw": b"%PDF"}]}}


STEPS = [no_model, model_from_args, returns_a_set, returns_bytes_deep]


# ---- flow input (build time) ------------------------------------------------------------


@pytest.mark.parametrize(
    ("step", "expected"),
    [
        ({"name": "a", "step": "s", "deps": "b"}, "steps.0.deps: Input should be a valid tuple"),
        ({"name": "a", "step": "s", "args": [1]}, "steps.0.args: Input should be a valid dict"),
        ({"name": "a", "step": ""}, "steps.0.step: String should have at least 1 character"),
        ({"name": "a", "step": "s", "quorum": 0}, "steps.0.quorum: Input should be greater"),
    ],
)
def test_json_flow_fields_of_the_wrong_type(step: dict, expected: str) -> None:
    with pytest.raises(FlowError, match="invalid flow: " + expected.replace(".", r"\.")):
        baton.Flow.from_json({"baton_flow": 1, "workflow_name": "x", "steps": [step]})


def test_json_flow_with_malformed_step_options_is_refused_when_read() -> None:
    with pytest.raises(FlowError, match="start_to_close_timeout"):
        baton.Flow.from_json(
            {
                "baton_flow": 1,
                "workflow_name": "x",
                "steps": [
                    {"name": "a", "step": "s", "options": {"start_to_close_timeout": "soon"}}
                ],
            }
        )


# ---- worker configuration (start time) ------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {"BATON_MAX_CONCURRENT_STEPS": "lots"},
            "BATON_MAX_CONCURRENT_STEPS='lots' is not a number",
        ),
        (
            {"BATON_MAX_CONCURRENT_STEPS": "0"},
            "BATON_MAX_CONCURRENT_STEPS='0' must be greater than 0",
        ),
        (
            {"BATON_GRACEFUL_SHUTDOWN_S": "-5"},
            "BATON_GRACEFUL_SHUTDOWN_S='-5' must be greater than 0",
        ),
    ],
)
def test_worker_settings_that_are_not_numbers(env: dict, expected: str) -> None:
    with pytest.raises(ValueError, match=expected):
        WorkerSettings.from_env(env)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("no_such_pkg.steps", "cannot import step module 'no_such_pkg.steps'.*check BATON_STEPS"),
        ("json", "'json' holds no steps; decorate step functions with @baton.step"),
        ("workers.examples.seed:NOPE", "module 'workers.examples.seed' has no attribute 'NOPE'"),
    ],
)
def test_step_modules_that_cannot_be_loaded(spec: str, expected: str) -> None:
    with pytest.raises(ImportError, match=expected):
        load_steps([spec])


async def test_unreachable_temporal_fails_fast_and_says_what_to_do(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TEMPORAL_ADDRESS", "127.0.0.1:1")
    started = time.monotonic()
    with pytest.raises(ConnectionError) as caught:
        await connect()
    assert time.monotonic() - started < 15  # no retrying for ever
    message = str(caught.value)
    assert "cannot reach Temporal at 127.0.0.1:1" in message
    assert "baton dev" in message and "TEMPORAL_ADDRESS" in message


def test_prices_file_that_does_not_exist() -> None:
    with pytest.raises(PricingError, match="cannot read price table /no/such/prices.json"):
        pricer_from_env({"BATON_PRICES_FILE": "/no/such/prices.json"})


def test_llm_timeout_that_is_not_a_number_names_the_variable() -> None:
    with pytest.raises(ValueError, match="BATON_LLM_TIMEOUT_S"):
        LLMConfig.from_env({"BATON_LLM_TIMEOUT_S": "abc"})


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("not a url", "invalid ledger URL 'not a url'; expected e.g. postgresql://"),
        ("mysql://u:pw@db/x", "unsupported ledger database 'mysql://u:***@db/x'"),
    ],
)
def test_worker_program_with_a_bad_ledger_url_stops_at_once(url: str, expected: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "workers.worker"],
        cwd=ROOT,
        env={
            **os.environ,
            "BATON_STEPS": "workers.examples.seed",
            "BATON_LEDGER_URL": url,
            "TEMPORAL_ADDRESS": "127.0.0.1:1",
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert expected in done.stderr and "Traceback" not in done.stderr
    assert "pw" not in done.stderr  # the password is hidden


# ---- models (refused when the flow is built where the flow names them, else on the first
# attempt) ---------------------------------------------------------------------------------


def test_unknown_models_are_refused_when_the_flow_is_built() -> None:
    """Documented in the table: models the flow names (configure, fan_out) are checked at
    build; a model a step picks itself is checked when the step calls it."""
    fix = "Prefix it with its provider: 'anthropic:llama3.2', 'openai:llama3.2'"
    with pytest.raises(FlowError, match=f"no provider is known for model 'llama3.2'. {fix}"):
        baton.new(workflow_name="x").pipe(multi_model.configure, {"a": "llama3.2"})
    with pytest.raises(
        FlowError, match=r"fan_out\('a'\): no provider is known for model 'llama3.2'"
    ):
        baton.new(workflow_name="x").pipe(
            multi_model.fan_out, "a", model_from_args, models=["gpt-4o", "llama3.2"]
        )
    # Nothing reached Temporal; with the prefix the same model is accepted.
    flow = baton.new(workflow_name="x").pipe(
        multi_model.configure, {"a": "openai-compatible:llama3.2"}
    )
    assert flow.add("a", model_from_args).node("a").args == {
        "workflow_model": "openai-compatible:llama3.2"
    }


async def _failure(client: Client, task_queue: str, baton_worker, flow: baton.Flow, **kw) -> str:  # type: ignore[no-untyped-def]
    async with baton_worker(STEPS, **kw):
        with pytest.raises(WorkflowFailureError) as info:
            await asyncio.wait_for(flow.run(client, task_queue=task_queue), 30)
        history = await client.get_workflow_handle(flow.workflow_id).fetch_history()
    started = [e for e in history.events if e.HasField("activity_task_started_event_attributes")]
    # Failed on the first attempt: nothing a retry could fix was retried.
    assert [e.activity_task_started_event_attributes.attempt for e in started] == [1]
    cause = info.value.cause
    assert isinstance(cause, ApplicationError)
    return cause.message


@pytest.mark.parametrize(
    ("step", "args", "expected"),
    [
        (
            no_model,
            {},
            "UnknownModel: call_llm in step 's' has no model: pass model='...' or configure one",
        ),
        (
            model_from_args,
            {"workflow_model": "llama3.2"},
            "openai-compatible:llama3.2",
        ),
        (model_from_args, {"workflow_model": "mistral:7b"}, "UnknownModel"),
        (returns_a_set, {}, "StepResultError: step 's' returned a result that is not JSON: "),
        (returns_bytes_deep, {}, "['doc']['pages'][0]['raw'] is a bytes"),
    ],
)
async def test_run_time_refusals_fail_on_the_first_attempt(
    client: Client, task_queue: str, baton_worker, tmp_path: Path, step, args, expected: str
) -> None:  # type: ignore[no-untyped-def]
    flow = baton.new(workflow_name="bad").add("s", step, args)
    async with StandIn() as standin:
        message = await _failure(
            client,
            task_queue,
            baton_worker,
            flow,
            llm=standin.config(),
            ledger=f"sqlite:///{tmp_path / 'l.sqlite3'}",
        )
        assert standin.requests == []  # refused before any request was sent
    assert expected in message, message


@pytest.mark.parametrize(
    "options",
    [
        {"start_to_close_timeout": "soon"},
        {"heartbeat_timeout": -5},
        {"retry": {"maximum_attempts": "many"}},
    ],
)
async def test_malformed_step_options_fail_the_run_at_once(
    client: Client, task_queue: str, baton_worker, options: dict
) -> None:  # type: ignore[no-untyped-def]
    data = {
        "baton_flow": 1,
        "workflow_name": "bad-options",
        "steps": [{"name": "a", "step": "returns_a_set", "options": options}],
    }
    async with baton_worker(STEPS, ledger=False):
        handle = await client.start_workflow(
            baton.FLOW_WORKFLOW_TYPE,
            data,
            id=f"bad-options-{uuid.uuid4()}",
            task_queue=task_queue,
            execution_timeout=timedelta(seconds=30),
        )
        try:
            with pytest.raises(WorkflowFailureError) as info:
                await asyncio.wait_for(handle.result(), 2)
        finally:
            # Only a stuck run is still there to terminate.
            with contextlib.suppress(RPCError):
                await handle.terminate("test over")
    assert "options" in str(info.value.cause)
