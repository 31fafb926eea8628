"""Provider faults through a flow: each either succeeds on a retry or fails at once with a
reason that says what is wrong; none leaves a run retrying for ever. Each flow runs the
same fault against both SDK paths (Anthropic and OpenAI) at once, and the ledger must
hold exactly the calls that were billed."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from temporalio.client import Client, WorkflowFailureError

import baton_temporal as baton
from baton_temporal.ledger import LedgerStore
from baton_temporal.llm import LLMConfig
from baton_temporal.pricing import GenAIPricesPricer
from baton_temporal.testing import Fault, StandIn

from . import steps
from .support import ledger_rows

pytestmark = pytest.mark.timeout(60)

MODELS = {"anthropic": "claude-sonnet-4-20250514", "openai": "gpt-4o"}
CALL_TIMEOUT_S = 1.0  # LLMConfig.timeout_s: a reply slower than this is a timeout
RUN_BOUND_S = 30  # no run may take longer than this, whatever the fault


def two_providers(name: str) -> baton.Flow:
    flow = baton.new(workflow_name=f"fault-{name}")
    for provider, model in MODELS.items():
        flow = flow.add(provider, steps.ask, {"model": model, "params": {"max_tokens": 50}})
    return flow


@pytest_asyncio.fixture
async def store(tmp_path: Path) -> AsyncIterator[LedgerStore]:
    s = LedgerStore.from_url(f"sqlite:///{tmp_path / 'ledger.sqlite3'}", pricer=GenAIPricesPricer())
    await s.migrate()
    yield s
    await s.close()


# name: (the replies each provider gives, in order), expected outcome, and for a failure
# the words its message must hold.
RECOVERS = {
    "429 with retry-after": [Fault.status(429, retry_after=1), Fault.ok()],
    "500": [Fault.status(500), Fault.ok()],
    "503 then 529 overloaded": [Fault.status(503), Fault.status(529), Fault.ok()],
    "timeout (slow reply)": [Fault.slow(3 * CALL_TIMEOUT_S), Fault.ok()],
    "malformed JSON": [Fault.malformed(), Fault.ok()],
    "connection reset": [Fault.reset(), Fault.ok()],
}
# Faults whose first reply is billed or recorded: (billed by the stand-in, the row the
# ledger keeps for the first attempt's call).
FIRST_ATTEMPT = {
    "timeout (slow reply)": (True, "lost_reply"),
    "malformed JSON": (True, "usage_unknown"),
    "connection reset": (False, "lost_reply"),
}
FAILS = {
    "400 bad request": (
        [Fault.status(400, "max_tokens: too large")],
        ["ProviderRejected", "HTTP 400", "max_tokens: too large"],
    ),
    "401 bad key": ([Fault.status(401)], ["ProviderRejected", "HTTP 401", "check"]),
    "404 unknown model": (
        [Fault.status(404)],
        ["ProviderRejected", "HTTP 404", "check the model name"],
    ),
    "503 on every attempt": (
        [Fault.status(503)] * steps.QUICK_RETRY.maximum_attempts,
        # The last attempt's error says so, instead of promising another try.
        ["ProviderRetryable", "HTTP 503", "not retried: this was attempt 4 of the 4"],
    ),
}


async def run_case(
    client: Client,
    task_queue: str,
    baton_worker: Any,
    store: LedgerStore,
    config: LLMConfig,
    name: str,
) -> tuple[Any, float, baton.Flow]:
    flow = two_providers(name.replace(" ", "-").replace("(", "").replace(")", ""))
    started = time.monotonic()
    async with baton_worker(steps.ALL, ledger=store, llm=config):
        handle = await flow.start(client, task_queue=task_queue)
        try:
            outcome: Any = await asyncio.wait_for(handle.result(), RUN_BOUND_S)
        except WorkflowFailureError as err:
            outcome = err
    return outcome, time.monotonic() - started, flow


@pytest.mark.parametrize("name", RECOVERS)
async def test_transient_provider_fault_succeeds_on_a_retry(
    name: str, client: Client, task_queue: str, baton_worker, store: LedgerStore
) -> None:
    faults = RECOVERS[name]
    async with StandIn() as standin:
        for model in MODELS.values():
            standin.script(model, faults)
        result, took, flow = await run_case(
            client, task_queue, baton_worker, store, standin.config(timeout_s=CALL_TIMEOUT_S), name
        )
        requests = standin.requests
    assert not isinstance(result, Exception), result
    # What the first reply was: billed by the provider (as a real one bills a request
    # it accepted, even if the client stopped waiting or the body broke in transit), and
    # the row the ledger keeps for it. A reset before any reply is not billed by the
    # stand-in, but the ledger cannot tell it from a reply lost in transit: it keeps a
    # lost reply, labelled as not known to be billed.
    first_billed, first_row = FIRST_ATTEMPT.get(name, (False, None))
    for provider, model in MODELS.items():
        assert result.steps[provider].attempt == len(faults)
        mine = [r for r in requests if r.model == model]
        assert len(mine) == len(faults) and [r.billed for r in mine] == [first_billed] * (
            len(faults) - 1
        ) + [True]
        if name == "429 with retry-after":
            assert mine[1].time - mine[0].time >= 1.0  # the provider's delay was honoured
        if name.startswith("timeout"):
            assert mine[0].outcome == "client_gone"  # the client gave up; billed all the same
    rows = await ledger_rows(store, flow.workflow_id)
    billed = sum(r.billed for r in requests)
    final = [r for r in rows if r["status"] == "ok"]
    assert sorted((r["step"], r["attempt"]) for r in final) == [
        (p, len(faults)) for p in sorted(MODELS)
    ]
    earlier = sorted((r["step"], r["attempt"], r["status"]) for r in rows if r not in final)
    if first_row is None:
        assert earlier == [] and len(rows) == billed == len(MODELS)
    else:
        assert earlier == [(p, 1, first_row) for p in sorted(MODELS)]
        assert all(r["cost_usd"] is None for r in rows if r not in final)
        unbilled = 0 if first_billed else len(MODELS)
        assert len(rows) == billed + unbilled
    print(
        f"\n{name}: completed after {len(faults)} attempts per provider in {took:.1f} s; "
        f"requests {len(requests)}, billed {billed}, recorded {len(rows)}"
    )


@pytest.mark.parametrize("name", FAILS)
async def test_provider_refusal_fails_at_once_with_a_clear_reason(
    name: str, client: Client, task_queue: str, baton_worker, store: LedgerStore
) -> None:
    faults, words = FAILS[name]
    async with StandIn() as standin:
        for model in MODELS.values():
            standin.script(model, faults)
        failure, took, flow = await run_case(
            client, task_queue, baton_worker, store, standin.config(timeout_s=CALL_TIMEOUT_S), name
        )
        requests = standin.requests
    assert isinstance(failure, WorkflowFailureError), failure
    message = str(failure.cause)
    for provider in MODELS:
        assert f"step {provider!r} failed" in message
    for word in words:
        assert word in message, message
    for model in MODELS.values():
        # Refusals are not retried; a transient fault stops after the retry policy's attempts.
        assert len([r for r in requests if r.model == model]) == len(faults)
    assert sum(r.billed for r in requests) == 0
    assert await ledger_rows(store, flow.workflow_id) == []
    print(
        f"\n{name}: failed after {len(faults)} attempt(s) per provider in {took:.1f} s: {message[:700]}"
    )


# ---- a reply cut off mid-body (the stand-in cannot do this, so a tiny server here does) --


class CutOffServer:
    """Answers Anthropic and OpenAI requests; the first ``cut`` replies announce their full
    length and then stop halfway through the body, closing the connection."""

    def __init__(self, cut: int) -> None:
        self.cut = cut
        self.served: list[tuple[str, bool]] = []  # (path, whole reply sent)
        self._server: asyncio.base_events.Server | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def __aenter__(self) -> CutOffServer:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                path = line.split()[1].decode()
                length = 0
                while (header := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = header.decode().partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value)
                request = json.loads(await reader.readexactly(length))
                body = json.dumps(_reply(path, request["model"])).encode()
                head = (
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                    f"content-length: {len(body)}\r\n\r\n"
                ).encode()
                whole = self.cut <= 0
                self.cut -= 1
                self.served.append((path, whole))
                writer.write(head + (body if whole else body[: len(body) // 2]))
                await writer.drain()
                if not whole:
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()


def _reply(path: str, model: str) -> dict[str, Any]:
    text = '{"score": 7, "label": "good"}'
    if path.endswith("/messages"):
        return {
            "id": "msg_cut",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": 12, "output_tokens": 9},
        }
    return {
        "id": "chatcmpl-cut",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 9, "total_tokens": 21},
    }


async def test_reply_cut_off_mid_body_is_retried(
    client: Client, task_queue: str, baton_worker, store: LedgerStore
) -> None:
    async with CutOffServer(cut=len(MODELS)) as server:
        config = LLMConfig(
            anthropic_api_key="sk-ant-test",
            anthropic_base_url=server.url,
            openai_api_key="sk-test",
            openai_base_url=f"{server.url}/v1",
            timeout_s=CALL_TIMEOUT_S,
        )
        result, took, flow = await run_case(
            client, task_queue, baton_worker, store, config, "cut off"
        )
    assert not isinstance(result, Exception), result
    assert {p: result.steps[p].attempt for p in MODELS} == {"anthropic": 2, "openai": 2}
    assert sorted(whole for _, whole in server.served) == [False, False, True, True]
    rows = await ledger_rows(store, flow.workflow_id)
    # The cut reply was sent with a success status, so a provider billed it; its usage
    # was never read: a lost reply (input estimated, unpriced), then the retry's row.
    assert sorted((r["step"], r["attempt"], r["status"]) for r in rows) == [
        ("anthropic", 1, "lost_reply"),
        ("anthropic", 2, "ok"),
        ("openai", 1, "lost_reply"),
        ("openai", 2, "ok"),
    ]
    assert [r["input_tokens"] for r in rows if r["status"] == "ok"] == [12, 12]
    print(
        f"\nreply cut off mid-body: completed after 2 attempts per provider in {took:.1f} s; "
        f"replies {len(server.served)}, whole {sum(w for _, w in server.served)}, recorded {len(rows)}"
    )
