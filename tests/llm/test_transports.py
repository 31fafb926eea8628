"""Both HTTP transports under the SDK clients (aiohttp, BatonPlugin's default, and the
SDKs' httpx) carry calls and tell a request that may have been billed (the server hung
up after it arrived) from one that never left (the connection was refused): the ledger
keeps a lost reply for the first and nothing for the second. Real SDK clients, the
stand-in, no mocks."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid
from typing import Any

import pytest
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

import baton_temporal as baton
from baton_temporal.llm import LLMClients, LLMConfig, complete
from baton_temporal.llm._clients import TRANSPORT_ENV, transport_from_env
from baton_temporal.llm._complete import UnansweredRequestError
from baton_temporal.testing import Fault, StandIn

pytestmark = pytest.mark.timeout(90)

TRANSPORTS = ("aiohttp", "httpx")
MODELS = ("claude-sonnet-4-20250514", "gpt-4o")


def _transport_of(sdk_client: object) -> str:
    http = sdk_client._client  # type: ignore[attr-defined]  # the SDK's HTTP client
    return type(http._transport).__name__


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_each_transport_carries_calls_of_both_providers(
    transport: str, standin: StandIn, config: LLMConfig
) -> None:
    async with LLMClients.for_slots(4, transport=transport) as clients:  # type: ignore[arg-type]
        for model in MODELS:
            provider = "anthropic" if model.startswith("claude") else "openai"
            used = _transport_of(clients.get(provider, config))
            assert (used == "_KeepTail") is (transport == "aiohttp"), used
            reply = await complete(
                [{"role": "user", "content": "hi"}], model=model, config=config, clients=clients
            )
            assert reply.text and reply.usage.output_tokens > 0
    assert standin.billed_calls() == 2


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_hang_up_after_the_request_is_maybe_billed_a_refusal_is_not(
    transport: str, model: str, standin: StandIn, config: LLMConfig
) -> None:
    messages = [{"role": "user", "content": "hi"}]
    async with LLMClients.for_slots(2, transport=transport) as clients:  # type: ignore[arg-type]
        standin.script(model, [Fault.reset()])
        with pytest.raises(UnansweredRequestError) as hung_up:
            await complete(messages, model=model, config=config, clients=clients)
        assert hung_up.value.type == "ProviderRetryable"
        assert len(standin.requests) == 1  # it did arrive

        port = _closed_port()
        dead = config.model_copy(
            update={
                "anthropic_base_url": f"http://127.0.0.1:{port}",
                "openai_base_url": f"http://127.0.0.1:{port}/v1",
            }
        )
        with pytest.raises(ApplicationError) as refused:
            await complete(messages, model=model, config=dead, clients=clients)
        assert not isinstance(refused.value, UnansweredRequestError)
        assert refused.value.type == "ProviderRetryable"
        # Said as a connection that failed, not as a slow provider (openai's aiohttp
        # transport calls a refused connection a timeout), and retried.
        message = str(refused.value)
        assert "could not reach" in message and "did not answer" not in message, message
        assert "will be retried" in message, message


def test_the_transport_setting_is_checked_with_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TRANSPORT_ENV, "curl")
    with pytest.raises(ValueError, match="BATON_HTTP_TRANSPORT='curl' is not a transport") as err:
        transport_from_env()
    assert "aiohttp (the default) or httpx" in str(err.value)
    with pytest.raises(ValueError, match="transport must be 'aiohttp' or 'httpx'"):
        LLMClients(transport="curl")  # type: ignore[arg-type]
    monkeypatch.setenv(TRANSPORT_ENV, " HTTPX ")
    assert transport_from_env() == "httpx"
    monkeypatch.delenv(TRANSPORT_ENV)
    assert transport_from_env() == "aiohttp"


@baton.step
async def ask(job: baton.Job) -> dict:
    reply = await baton.call_llm(job, [{"role": "user", "content": "hi"}], model=MODELS[0])
    return {"text": reply.text}


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_worker_uses_the_transport_the_environment_names(
    transport: str, client: Client, standin: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TRANSPORT_ENV, transport)
    queue = f"transport-{uuid.uuid4().hex[:8]}"
    plugin = baton.BatonPlugin(steps=[ask], ledger=False, llm=standin.config())
    await plugin.preflight()
    async with Worker(client, task_queue=queue, plugins=[plugin]):
        result = (
            await baton.new(workflow_name="transport").add("a", ask).run(client, task_queue=queue)
        )
        resources = plugin.resources()
        assert resources is not None and resources.clients.transport == transport
        used = _transport_of(resources.clients.get("anthropic", standin.config()))
    assert result.results["a"]["text"]
    assert (used == "_KeepTail") is (transport == "aiohttp")


async def test_a_bad_transport_setting_stops_preflight(
    standin: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TRANSPORT_ENV, "urllib3")
    plugin = baton.BatonPlugin(steps=[ask], ledger=False, llm=standin.config())
    with pytest.raises(ValueError, match="set it to aiohttp \\(the default\\) or httpx"):
        await plugin.preflight()


class _RawServer:
    """A server on 127.0.0.1 that reads each request whole and then does ``answer``:
    for replies the stand-in never gives (a garbled head), or none at all."""

    def __init__(self, answer: bytes | None) -> None:
        self.answer = answer
        self.requests = 0
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def __aenter__(self) -> _RawServer:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            await reader.readexactly(length)
            self.requests += 1
            if self.answer is None:
                await asyncio.sleep(30)  # holds the connection, never answers
            else:
                writer.write(self.answer)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            writer.close()


def _pointed_at(url: str, timeout_s: float = 5.0) -> LLMConfig:
    return LLMConfig(
        anthropic_api_key=StandIn.ANTHROPIC_API_KEY,
        anthropic_base_url=url,
        openai_api_key=StandIn.OPENAI_API_KEY,
        openai_base_url=f"{url}/v1",
        timeout_s=timeout_s,
    )


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_garbled_reply_head_is_a_retryable_failure_of_a_sent_request(
    transport: str, model: str
) -> None:
    # aiohttp reports a head it cannot parse with an error the SDKs' map leaves alone;
    # the openai SDK wraps only httpx errors, so it used to escape complete() raw.
    async with (
        _RawServer(b"HTTP/1.1 OK-ish\r\n\r\n") as server,
        LLMClients(transport=transport) as clients,  # type: ignore[arg-type]
    ):
        with pytest.raises(UnansweredRequestError) as caught:
            await complete(
                [{"role": "user", "content": "hi"}],
                model=model,
                config=_pointed_at(server.url),
                clients=clients,
            )
    assert server.requests == 1
    assert caught.value.type == "ProviderRetryable" and not caught.value.non_retryable
    assert "could not reach" in caught.value.message and "will be retried" in caught.value.message


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_header_the_client_refuses_fails_for_good_and_was_never_sent(
    transport: str, model: str, standin: StandIn, config: LLMConfig
) -> None:
    # aiohttp refuses a line break in a header with a ValueError, which escaped the
    # openai SDK raw and under the anthropic SDK was retried as a maybe-billed request.
    async with LLMClients(transport=transport) as clients:  # type: ignore[arg-type]
        with pytest.raises(ApplicationError) as caught:
            await complete(
                [{"role": "user", "content": "hi"}],
                model=model,
                config=config,
                clients=clients,
                extra_headers={"x-trace": "a\r\nx-injected: 1"},
            )
    assert not isinstance(caught.value, UnansweredRequestError)
    assert caught.value.type == "InvalidLLMConfig" and caught.value.non_retryable
    assert "extra headers for line breaks" in caught.value.message
    assert standin.requests == []


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_wait_for_a_free_connection_that_times_out_was_never_sent(
    transport: str, model: str
) -> None:
    # The pool's one connection is held by a call the server never answers; the next
    # call times out waiting for it (httpx's PoolTimeout was taken for a sent request).
    messages = [{"role": "user", "content": "hi"}]
    async with _RawServer(None) as server:
        config = _pointed_at(server.url, timeout_s=0.5)
        async with LLMClients(transport=transport, max_connections=1) as clients:  # type: ignore[arg-type]
            holder = asyncio.ensure_future(
                complete(messages, model=model, config=config, clients=clients, timeout=5.0)
            )
            while server.requests == 0:
                await asyncio.sleep(0.02)
            with pytest.raises(ApplicationError) as caught:
                await complete(messages, model=model, config=config, clients=clients)
            holder.cancel()
            with contextlib.suppress(BaseException):
                await holder
    assert not isinstance(caught.value, UnansweredRequestError)
    assert caught.value.type == "ProviderRetryable" and "within 0.5 s" in caught.value.message
    assert server.requests == 1


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_clients_used_again_under_a_new_event_loop_build_afresh(
    transport: str, standin: StandIn, config: LLMConfig
) -> None:
    # A script that calls asyncio.run twice with one LLMClients: the first loop's pools
    # died with it (this was a raw RuntimeError, "attached to a different loop" or "Event
    # loop is closed", under either transport).
    clients = LLMClients(transport=transport)  # type: ignore[arg-type]

    async def ask() -> str:
        reply = await complete(
            [{"role": "user", "content": "hi"}], model=MODELS[1], config=config, clients=clients
        )
        return reply.text

    def run(coro: Any) -> Any:
        with asyncio.Runner() as runner:
            # The clients of a loop that ended unclosed are dropped, and aiohttp reports
            # its sessions as unclosed when they are collected: the misuse is the test's.
            runner.get_loop().set_exception_handler(lambda loop, context: None)
            return runner.run(coro)

    assert run(ask()) and run(ask()) and run(ask())
    assert clients.built == 3 and standin.billed_calls() == 3
    run(clients.aclose())


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_clients_in_use_on_another_running_loop_are_refused_with_the_fix(
    transport: str, standin: StandIn, config: LLMConfig
) -> None:
    async with LLMClients(transport=transport) as clients:  # type: ignore[arg-type]
        await complete(
            [{"role": "user", "content": "hi"}], model=MODELS[1], config=config, clients=clients
        )

        def other_thread() -> BaseException | None:
            async def ask() -> None:
                await complete(
                    [{"role": "user", "content": "hi"}],
                    model=MODELS[1],
                    config=config,
                    clients=clients,
                )

            try:
                asyncio.run(ask())
            except BaseException as err:  # handed back to the test
                return err
            return None

        err = await asyncio.to_thread(other_thread)
    assert isinstance(err, ApplicationError), err
    assert err.type == "InvalidLLMConfig" and err.non_retryable
    assert "make one LLMClients per event loop" in err.message


@pytest.mark.parametrize(
    ("base_url", "problem"),
    [
        ("ftp://127.0.0.1:9/", "does not start with http:// or https://"),
        ("http://user:PASSWORD-1234@127.0.0.1:9", "holds a user name or password"),
    ],
)
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_base_url_no_request_can_go_to_is_refused_before_sending(
    transport: str, base_url: str, problem: str, config: LLMConfig
) -> None:
    # Was retried as a failure to connect (aiohttp's refusal of a URL password: a
    # "malformed header"; httpx sent the password in place of the key and got a 401).
    bad = config.model_copy(update={"openai_base_url": base_url})
    async with LLMClients(transport=transport) as clients:  # type: ignore[arg-type]
        with pytest.raises(ApplicationError) as caught:
            await complete(
                [{"role": "user", "content": "hi"}], model="gpt-4o", config=bad, clients=clients
            )
    assert not isinstance(caught.value, UnansweredRequestError)
    assert caught.value.type == "InvalidLLMConfig" and caught.value.non_retryable
    assert f"the base URL for openai (OPENAI_BASE_URL) {problem}" in caught.value.message
    assert "PASSWORD-1234" not in caught.value.message
