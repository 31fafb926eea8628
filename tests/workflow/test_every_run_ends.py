"""Every run ends: each bad input, started past the builder, FAILS its run within seconds.

Each case is started twice, through the Python client (raw data, no build-time checks)
and through the real ``temporal`` CLI, on one shared worker, all at once. A run counts
only if it is FAILED (never still RUNNING, never TERMINATED) and its failure message names
the fix. Before this matrix most of these left the run RUNNING with its workflow task
failing in a loop.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from temporalio.api.common.v1 import Payload
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError
from temporalio.common import RawValue
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

import baton_temporal as baton
from baton_temporal.cli._devserver import temporal_cli_path

pytestmark = pytest.mark.timeout(120)

# How long a bad run may take to fail. Generous for a loaded 2-core machine; a wedged run
# never fails at all.
DEADLINE_S = 20


@baton.step
async def ok(job: baton.Job) -> dict:
    return {"ok": True}


@baton.step
async def refuse(job: baton.Job) -> dict:
    raise ApplicationError("refused on purpose", type="Refused", non_retryable=True)


def flow(*steps: dict[str, Any], **top: Any) -> dict[str, Any]:
    """A flow dict (default: one step running ``ok``), with fields overridden."""
    return {
        "baton_flow": 1,
        "workflow_name": "bad-input",
        "steps": list(steps) or [{"name": "a", "step": "ok"}],
        **top,
    }


def step(**fields: Any) -> dict[str, Any]:
    return {"name": "a", "step": "ok", **fields}


def nested(depth: int) -> Any:
    value: Any = "bottom"
    for _ in range(depth):
        value = {"k": value}
    return value


def deep_text(depth: int) -> str:
    """A flow whose args nest ``depth`` levels, as JSON text (too deep for json.dumps)."""
    args = '{"k":' * depth + '"bottom"' + "}" * depth
    return json.dumps(flow(step(args={"x": 0}))).replace('{"x": 0}', args)


def chain(n: int, *, cycle: bool = False) -> dict[str, Any]:
    """n steps in a chain listed dependents first: s0 needs s1, ..., s{n-1} runs first
    (and fails, so the rest is cancelled and the run ends fast)."""
    steps = [
        {"name": f"s{i}", "step": "ok", "deps": [f"s{i + 1}"] if i < n - 1 else []}
        for i in range(n)
    ]
    steps[-1]["step"] = "refuse"
    if cycle:
        steps[-1]["deps"] = ["s0"]
    return flow(*steps)


def bool_numbers() -> list[tuple[str, str, str, dict[str, Any]]]:
    """A JSON boolean for every number of the flow schema (true was read as 1 s, 1 attempt),
    the fields taken from the schema's own models so that a number added later is tried
    too: (where, field, JSON value, flow)."""
    from baton_temporal.flow._spec import (
        FlowSpec,
        OptionsSpec,
        RetrySpec,
        StepSpec,
        _numeric_fields,
    )

    out: list[tuple[str, str, str, dict[str, Any]]] = []
    for name in _numeric_fields(FlowSpec):
        out.append(("flow", name, "true", flow(**{name: True})))
    for name in _numeric_fields(StepSpec):
        out.append(("step", name, "true", flow(step(**{name: True}))))
    for name in _numeric_fields(OptionsSpec):
        out.append(("options", name, "true", flow(step(options={name: True}))))
    for name in _numeric_fields(RetrySpec):
        out.append(("retry", name, "false", flow(step(options={"retry": {name: False}}))))
    return out


@dataclass(frozen=True)
class Case:
    id: str
    expect: str | tuple[str, ...]
    """Text the failure message must hold (any one of a tuple): the fix it names."""
    data: Any = None
    text: str | None = None
    """Raw JSON text, for input the Python client cannot encode from data."""
    inputs: int = 1
    cli: str = "run"
    """"run": the CLI starts it and the run must fail; "refused": the CLI itself refuses
    the input (it is not JSON), so no run exists that could wedge."""
    meta: dict[str, str] = field(default_factory=dict)

    def json_text(self) -> str:
        return self.text if self.text is not None else json.dumps(self.data)


LONG = "x" * 1001
CASES = [
    # -- the input itself ------------------------------------------------------------
    Case("no input", "--input", inputs=0),
    Case("two inputs", "takes one input, the flow JSON, but was given 2", data=flow(), inputs=2),
    Case(
        "two inputs, one nested 5,000 deep",
        # The SDK decodes extra inputs itself and reports this; the run fails all the same.
        "Failed decoding arguments",
        text=deep_text(5000),
        inputs=2,
    ),
    Case("a JSON array", "a flow must be a JSON object, got list", data=[1]),
    Case("a JSON string", "a flow must be a JSON object, got str", data="flow.json"),
    Case("JSON null", "a flow must be a JSON object, got null", data=None),
    Case("a number", "a flow must be a JSON object, got int", data=42),
    Case("schema version 2", "unsupported flow schema version", data=flow(baton_flow=2)),
    Case("schema version true", "unsupported flow schema version", data=flow(baton_flow=True)),
    Case("unknown field", "Extra inputs are not permitted", data=flow(bogus=1)),
    Case("no steps", "add one with .add(name, step)", data=flow(steps=[])),
    # -- a forged continue-as-new input (only the workflow itself writes one) ----------
    Case(
        "forged carry: a result for a step that never ran",
        "continue-as-new input is malformed",
        data={"baton_continue": 1, "flow": flow(), "results": {"a": {"x": 1}}},
    ),
    Case(
        "forged carry: completed with a non-object result",
        "continue-as-new input is malformed",
        data={
            "baton_continue": 1,
            "flow": flow(),
            "states": {"a": {"step": "ok", "state": "completed"}},
            "results": {"a": 5},
        },
    ),
    Case(
        "forged carry: completed without a result",
        "'a' is completed but has no result",
        data={"baton_continue": 1, "flow": flow(), "states": {"a": {"state": "completed"}}},
    ),
    Case(
        "forged carry: states not a mapping",
        "'states' must map step names to step states",
        data={"baton_continue": 1, "flow": flow(), "states": [1, 2]},
    ),
    Case(
        "forged carry: runs not a number",
        "'runs' must be a whole number >= 1",
        data={"baton_continue": 1, "flow": flow(), "runs": "abc"},
    ),
    Case(
        "forged carry: a state of an unknown step, a bad field",
        ("not a step of the flow", "attempt is 'x'"),
        data={
            "baton_continue": 1,
            "flow": flow(),
            "states": {"zz": {"state": "completed"}, "a": {"attempt": "x"}},
        },
    ),
    Case(
        # Only a continuation of a run started before the refusal may read true as 1: a run
        # started with a carry it forged is a fresh run (no continued_run_id).
        "forged carry: a JSON boolean for a number in its flow",
        "heartbeat_timeout=true is a JSON boolean",
        data={
            "baton_continue": 1,
            "flow": flow(step(options={"heartbeat_timeout": True})),
        },
    ),
    Case(
        "forged carry: baton_continue true",
        "start a flow with the flow JSON alone",
        data={"baton_continue": True, "flow": flow()},
    ),
    Case("steps as a mapping", "steps: Input should be a valid", data=flow(steps={"a": 1})),
    Case(
        "not UTF-8",
        "cannot be read as JSON",
        text=base64.b64encode(b'{"baton_flow": 1, "workflow_name": "\xff"}').decode(),
        meta={"base64": "1"},
        cli="refused",
    ),
    Case(
        "binary payload",
        "a flow must be a JSON object, got bytes",
        text=base64.b64encode(b"not json").decode(),
        meta={"base64": "1", "encoding": "binary/plain"},
    ),
    Case(
        "protobuf encoding without a message type",
        "cannot be read as JSON",
        text=base64.b64encode(b"{}").decode(),
        meta={"base64": "1", "encoding": "json/protobuf"},
        cli="refused",
    ),
    Case(
        "null encoding",
        "a flow must be a JSON object, got null",
        text="",
        meta={"base64": "1", "encoding": "binary/null"},
    ),
    Case(
        "unknown encoding",
        "cannot be read as JSON",
        text=base64.b64encode(b"{}").decode(),
        meta={"base64": "1", "encoding": "text/x-bogus"},
    ),
    Case("whitespace only", "cannot be read as JSON", text="   ", cli="refused"),
    Case(
        "integer of 5,000 digits",
        ("cannot be read as JSON", "must be a JSON object"),
        text=json.dumps(flow(step(args={"n": 0}))).replace('"n": 0', '"n": ' + "9" * 5000),
    ),
    # -- nesting ---------------------------------------------------------------------
    Case("args nested 150 deep", "nests deeper than 100 levels", data=flow(step(args=nested(150)))),
    Case("args nested 5,000 deep", "nests too deeply to read", text=deep_text(5000)),
    Case(
        "models nested deep",
        "models.",
        data=flow(models=nested(300)),
    ),
    Case("options nested deep", "bad step options", data=flow(step(options=nested(300)))),
    Case("deps nested deep", "deps", data=flow(step(deps=[nested(300)]))),
    # -- graph -----------------------------------------------------------------------
    Case("1,300-step chain listed dependents first", "refused on purpose", data=chain(1300)),
    Case("1,300-step cycle", "the flow has a cycle", data=chain(1300, cycle=True)),
    Case(
        "10,000 unknown dependencies",
        "more problem(s)",
        data=flow(step(deps=[f"d{i}" for i in range(10_000)])),
    ),
    Case("quorum 2**70", "remove quorum", data=flow(step(quorum=2**70, deps=[]))),
    # -- retry policy ----------------------------------------------------------------
    Case(
        "maximum_interval below initial_interval",
        "make maximum_interval >= initial_interval",
        data=flow(step(options={"retry": {"initial_interval": 10, "maximum_interval": 1}})),
    ),
    Case(
        "maximum_interval below the default initial_interval",
        "make maximum_interval >= initial_interval",
        data=flow(step(options={"retry": {"maximum_interval": 0.5}})),
    ),
    Case(
        "maximum_attempts 2**31",
        "int32",
        data=flow(step(options={"retry": {"maximum_attempts": 2**31}})),
    ),
    Case(
        "maximum_attempts 1e10",
        "int32",
        text=json.dumps(flow(step(options={"retry": {"maximum_attempts": 7}}))).replace(
            '"maximum_attempts": 7', '"maximum_attempts": 1e10'
        ),
    ),
    Case(
        "maximum_attempts -1",
        "greater than or equal to 0",
        data=flow(step(options={"retry": {"maximum_attempts": -1}})),
    ),
    Case(
        "backoff_coefficient 0.5",
        "greater than or equal to 1",
        data=flow(step(options={"retry": {"backoff_coefficient": 0.5}})),
    ),
    Case(
        "backoff_coefficient 1e999 (infinite)",
        ("backoff_coefficient is inf", "out of range"),
        text=json.dumps(flow(step(options={"retry": {"backoff_coefficient": 7}}))).replace(
            '"backoff_coefficient": 7', '"backoff_coefficient": 1e999'
        ),
    ),
    Case(
        "initial_interval 1e11 s",
        "250 years",
        data=flow(step(options={"retry": {"initial_interval": 1e11}})),
    ),
    Case(
        "non_retryable_error_types entry of 1,001 bytes",
        "at most 1000 bytes",
        data=flow(step(options={"retry": {"non_retryable_error_types": [LONG]}})),
    ),
    Case(
        "non_retryable_error_types naming no timeout type",
        "names no timeout type Temporal knows; use one of 'TemporalTimeout:StartToClose'",
        data=flow(step(options={"retry": {"non_retryable_error_types": ["TemporalTimeout:Soon"]}})),
    ),
    # -- timeouts --------------------------------------------------------------------
    Case(
        "start_to_close_timeout -0.0",
        "greater than 0",
        data=flow(step(options={"start_to_close_timeout": -0.0})),
    ),
    Case(
        "start_to_close_timeout 1e12 s",
        "250 years",
        data=flow(step(options={"start_to_close_timeout": 1e12})),
    ),
    Case(
        "schedule_to_close_timeout 1e999 (infinite)",
        ("use a finite number", "out of range"),
        text=json.dumps(flow(step(options={"schedule_to_close_timeout": 7}))).replace(
            '"schedule_to_close_timeout": 7', '"schedule_to_close_timeout": 1e999'
        ),
    ),
    Case(
        "heartbeat_timeout longer than start_to_close_timeout",
        "could never fire; make it shorter",
        data=flow(step(options={"start_to_close_timeout": 5, "heartbeat_timeout": 60})),
    ),
    Case(
        "start_to_close longer than schedule_to_close",
        "bounds all attempts together; make it shorter",
        data=flow(step(options={"start_to_close_timeout": 60, "schedule_to_close_timeout": 5})),
    ),
    Case(
        "start_to_close_timeout 1e-9 s (0 as a timedelta)",
        "use at least 0.001 seconds",
        data=flow(step(options={"start_to_close_timeout": 1e-9})),
    ),
    Case(
        "retry initial_interval 1e-9 s",
        "use at least 0.001 seconds",
        data=flow(step(options={"retry": {"initial_interval": 1e-9}})),
    ),
    Case(
        "timeout as text",
        "Input should be a valid number",
        data=flow(step(options={"start_to_close_timeout": "soon"})),
    ),
    # -- names and queues ------------------------------------------------------------
    Case(
        "task queue of 1,001 bytes",
        "at most 1000 bytes",
        data=flow(step(options={"task_queue": LONG})),
    ),
    Case(
        "reserved task queue",
        "reserves for its own queues",
        data=flow(step(options={"task_queue": "/_sys/x"})),
    ),
    Case(
        "task queue with spaces around",
        "surrounding whitespace",
        data=flow(step(options={"task_queue": " q "})),
    ),
    Case("step reference of 1,001 bytes", "at most 1000 bytes", data=flow(step(step=LONG))),
    Case(
        "step reference of 900 characters (a UI label over the server's 400-byte limit)",
        "no step named",
        data=flow(step(name="n" * 100, step="é" * 450)),
    ),
    Case("step reference with a newline", "control characters", data=flow(step(step="ok\nx"))),
    Case(
        "step reference with a lone surrogate",
        # Go's JSON (the CLI) turns the surrogate into U+FFFD: then no worker has the step.
        ("unable to parse raw data as a unicode string", "no step named"),
        text=json.dumps(flow(step(step="ok"))).replace('"step": "ok"', '"step": "\\ud800"'),
    ),
    Case("step name 'a\\n'", "is not valid", data=flow(step(name="a\n"))),
    Case("unicode step name", "is not valid", data=flow(step(name="étape"))),
    Case("workflow_name of 1,001 bytes", "at most 1000 bytes", data=flow(workflow_name=LONG)),
    Case("workflow_name empty", "at least 1 character", data=flow(workflow_name="")),
    Case("workflow_id of 1,001 bytes", "at most 1000 bytes", data=flow(workflow_id=LONG)),
    # -- numbers ---------------------------------------------------------------------
    Case("max_concurrency 0", "greater than or equal to 1", data=flow(max_concurrency=0)),
    Case("max_concurrency 10**6", "1..2,000", data=flow(max_concurrency=10**6)),
    Case("max_concurrency 'many'", "valid integer", data=flow(max_concurrency="many")),
    Case("max_concurrency 2.5", "valid integer", data=flow(max_concurrency=2.5)),
    *[
        Case(f"{where} {name}={value}", f"{name}={value} is a JSON boolean", data=data)
        for where, name, value, data in bool_numbers()
    ],
    Case(
        "NaN in args",
        "args['v'] is nan",
        text=json.dumps(flow(step(args={"v": 7}))).replace('"v": 7', '"v": NaN'),
        cli="refused",
    ),
    Case(
        "Infinity in args",
        "args['v'] is inf",
        text=json.dumps(flow(step(args={"v": 7}))).replace('"v": 7', '"v": 1e999'),
    ),
]


@pytest_asyncio.fixture(scope="module")
async def shared_worker(temporal_env: WorkflowEnvironment) -> AsyncIterator[str]:
    """One worker for the whole matrix; yields its task queue."""
    queue = f"every-run-ends-{uuid.uuid4().hex[:8]}"
    # A step no worker registers fails at once here (0) instead of waiting for a rolling
    # deploy (core/test_rollout.py covers the wait).
    plugin = baton.BatonPlugin(steps=[ok, refuse], ledger=False, unregistered_step_wait=0)
    async with Worker(temporal_env.client, task_queue=queue, plugins=[plugin]):
        yield queue


def address(env: WorkflowEnvironment) -> str:
    return env.client.service_client.config.target_host


async def start_with_client(client: Client, case: Case, workflow_id: str, queue: str) -> None:
    if case.inputs == 0:
        args: list[Any] = []
    elif case.meta or case.text is not None:
        data = case.json_text().encode("utf-8", "surrogatepass")
        metadata = {"encoding": b"json/plain"}
        if case.meta.get("base64"):
            data = base64.b64decode(data)
            metadata["encoding"] = case.meta.get("encoding", "json/plain").encode()
        args = [RawValue(Payload(metadata=metadata, data=data))] * case.inputs
    else:
        args = [case.data] * case.inputs
    await client.start_workflow(
        baton.FLOW_WORKFLOW_TYPE, args=args, id=workflow_id, task_queue=queue
    )


async def start_with_cli(
    env: WorkflowEnvironment, case: Case, workflow_id: str, queue: str, tmp: Path
) -> None:
    command = [
        temporal_cli_path(),
        "workflow",
        "start",
        "--address",
        address(env),
        "--type",
        baton.FLOW_WORKFLOW_TYPE,
        "--task-queue",
        queue,
        "--workflow-id",
        workflow_id,
    ]
    if case.inputs:
        text = case.json_text()
        if len(text) > 100_000:  # beyond one argv string's limit: a file
            path = tmp / f"{workflow_id}.json"
            path.write_text(text)
            command += ["--input-file", str(path)] * case.inputs
        else:
            command += ["--input", text] * case.inputs
        if case.meta.get("base64"):
            command.append("--input-base64")
        if "encoding" in case.meta:
            command += ["--input-meta", f"encoding={case.meta['encoding']}"]
    proc = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    _, err = await proc.communicate()
    if proc.returncode != 0:
        raise CliRefused(err.decode()[-300:])


class CliRefused(Exception):
    """``temporal workflow start`` refused the input itself: no run was started."""


async def outcome(client: Client, workflow_id: str) -> tuple[str, str]:
    """(final status, failure text), polling until the run closes or DEADLINE_S passes."""
    handle = client.get_workflow_handle(workflow_id)
    deadline = time.monotonic() + DEADLINE_S
    while True:
        status = (await handle.describe()).status
        if status != WorkflowExecutionStatus.RUNNING or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    if status == WorkflowExecutionStatus.RUNNING:
        with contextlib.suppress(RPCError):
            await handle.terminate("wedged: the matrix gave up on it")
        return "RUNNING", ""
    try:
        await handle.result()
    except WorkflowFailureError as err:
        cause = err.cause
        text = f"{type(cause).__name__}"
        if isinstance(cause, ApplicationError):
            text += f" {cause.type}: {cause.message}"
        else:
            text += f": {cause}"
        return status.name if status else "?", text
    return status.name if status else "?", "(completed)"


@pytest.mark.parametrize("path", ["client", "cli"])
async def test_every_bad_input_fails_its_run_within_seconds(
    temporal_env: WorkflowEnvironment, shared_worker: str, path: str, tmp_path: Path
) -> None:
    client = temporal_env.client
    cases = CASES
    gate = asyncio.Semaphore(8)  # CLI processes at once, on a 2-core machine

    async def one(case: Case) -> tuple[Case, str, str]:
        workflow_id = f"ends-{path}-{uuid.uuid4().hex[:10]}"
        async with gate:
            if path == "client":
                await start_with_client(client, case, workflow_id, shared_worker)
            else:
                try:
                    await start_with_cli(temporal_env, case, workflow_id, shared_worker, tmp_path)
                except CliRefused as err:
                    return case, "NOT STARTED", str(err)
        status, text = await outcome(client, workflow_id)
        return case, status, text

    started = time.monotonic()
    results = await asyncio.gather(*(one(c) for c in cases))
    took = time.monotonic() - started
    wrong = []
    for case, status, text in results:
        expected = case.expect if isinstance(case.expect, tuple) else (case.expect,)
        if path == "cli" and case.cli == "refused":
            if status != "NOT STARTED" or "not valid JSON" not in text:
                wrong.append(f"{case.id}: the CLI started it ({status} {text[:200]!r})")
        elif status != "FAILED" or not any(e in text for e in expected):
            wrong.append(f"{case.id}: {status} {text[:400]!r} (expected {expected})")
    assert not wrong, f"{len(wrong)} of {len(cases)} cases:\n" + "\n".join(wrong)
    print(
        f"{path}: {len(cases)} bad inputs, every run FAILED (or refused by the CLI) in {took:.1f} s"
    )
