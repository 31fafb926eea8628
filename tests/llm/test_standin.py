"""The stand-in itself: wire formats, scripting, latency, counters, sync and async use."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request

import anthropic
import openai
import pytest

from baton_temporal.llm import LLMClients, LLMConfig, complete
from baton_temporal.testing import Fault, StandIn

USER = [{"role": "user", "content": "Assess doc-1"}]


def _post(url: str, body: object, headers: dict[str, str] | None = None) -> tuple[int, dict]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers=headers or {}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_sync_use_with_the_sdks_configured_only_by_env(monkeypatch: pytest.MonkeyPatch) -> None:
    with StandIn() as standin:
        assert standin.url.startswith("http://127.0.0.1:") and standin.port > 0
        for name, value in standin.env().items():
            monkeypatch.setenv(name, value)
        # The SDKs' own env handling: no base_url or key passed in code.
        with anthropic.Anthropic(max_retries=0) as a:
            message = a.messages.create(model="claude-x-1", max_tokens=64, messages=USER)
        with openai.OpenAI(max_retries=0) as o:
            chat = o.chat.completions.create(model="gpt-4o", messages=USER)
        assert json.loads(message.content[0].text)["score"] in range(1, 11)
        assert json.loads(chat.choices[0].message.content or "")["label"]
        assert message.usage.input_tokens > 0 and chat.usage is not None
        assert chat.usage.prompt_tokens_details is not None
        assert [r.path for r in standin.requests] == ["/v1/messages", "/v1/chat/completions"]
        assert all(r.api_key_present and r.billed for r in standin.requests)
        assert standin.billed_calls() == 2 and standin.billed_calls("gpt-4o") == 1
    assert "stopped" in repr(standin)


async def test_async_context_manager_and_any_path_prefix() -> None:
    async with StandIn() as standin:
        key = {"x-api-key": "k", "content-type": "application/json"}
        body = {"model": "claude-x", "max_tokens": 5, "messages": USER}
        for url in (f"{standin.url}/messages", f"{standin.url}/v1/v1/messages"):
            status, reply = await asyncio.to_thread(_post, url, body, key)
            assert status == 200 and reply["type"] == "message"
        status, reply = await asyncio.to_thread(
            _post, f"{standin.url}/chat/completions", {"model": "gpt-4o", "messages": USER}, key
        )
        assert status == 200 and reply["object"] == "chat.completion"


def test_protocol_errors_are_provider_shaped(standin: StandIn) -> None:
    auth = {"authorization": "Bearer k"}
    status, body = _post(f"{standin.url}/v1/nowhere", {"model": "x"}, auth)
    assert status == 404 and "nowhere" in body["error"]["message"]
    status, body = _post(f"{standin.url}/v1/messages", b"{not json", auth)
    assert status == 400 and body["type"] == "error"
    status, body = _post(f"{standin.openai_base_url}/chat/completions", {"messages": []}, auth)
    assert status == 400 and "model" in body["error"]["message"]
    # No key: 401 like a provider, and a scripted fault is not used up by it.
    standin.script("gpt-4o", [Fault.status(500)])
    status, body = _post(f"{standin.openai_base_url}/chat/completions", {"model": "gpt-4o"})
    assert status == 401 and body["error"]["code"] == "invalid_api_key"
    assert standin.pending_faults("gpt-4o") == 1
    assert standin.billed_calls() == 0
    with urllib.request.urlopen(f"{standin.url}/health", timeout=5) as response:
        assert json.loads(response.read()) == {"ok": True}


async def test_model_queues_come_before_the_global_one(
    standin: StandIn, config: LLMConfig, clients: LLMClients
) -> None:
    standin.script(None, [Fault.status(503), Fault.status(502)])
    standin.script("openai:gpt-4o", [Fault.status(429)])  # the prefix is ignored
    assert standin.pending_faults("gpt-4o") == 1 and standin.pending_faults() == 2
    codes = []
    for model in ("gpt-4o", "gpt-4o", "claude-x-2", "gpt-4o"):
        try:
            await complete(USER, model=model, config=config, clients=clients)
            codes.append(200)
        except Exception as err:
            codes.append(err.details[0]["status_code"])  # type: ignore[attr-defined]
    assert codes == [429, 503, 502, 200]
    assert [r.status_code for r in standin.requests] == codes
    assert standin.pending_faults() == standin.pending_faults("gpt-4o") == 0


async def test_retry_after_http_date_and_custom_headers(
    standin: StandIn, config: LLMConfig, clients: LLMClients
) -> None:
    standin.script(
        "gpt-4o",
        [Fault.status(429, retry_after="Wed, 21 Oct 2015 07:28:00 GMT", headers={"x-a": "b"})],
    )
    with pytest.raises(Exception) as caught:
        await complete(USER, model="gpt-4o", config=config, clients=clients)
    # A date in the past means "now": no delay, Temporal's own backoff applies.
    assert caught.value.next_retry_delay is None  # type: ignore[attr-defined]


async def test_latency_per_model_and_concurrent_requests(
    standin: StandIn, config: LLMConfig, clients: LLMClients
) -> None:
    standin.set_latency(1.0, model="claude-opus-4-20250514")
    quick = await complete(USER, model="claude-sonnet-4-20250514", config=config, clients=clients)
    first = len(standin.requests)
    replies = await asyncio.gather(
        *(
            complete(USER, model="claude-opus-4-20250514", config=config, clients=clients)
            for _ in range(40)
        )
    )
    # The latency is opus's only.
    assert quick.usage.latency_ms is not None and quick.usage.latency_ms < 1000
    assert all(r.usage.latency_ms is not None and r.usage.latency_ms >= 1000 for r in replies)
    # Served concurrently, not one after another: every request arrived before the first
    # answer could have left (each waits 1 s), whatever the machine's load.
    arrivals = [r.time for r in standin.requests[first:]]
    assert len(arrivals) == 40 and max(arrivals) - min(arrivals) < 1.0
    assert standin.billed_calls("claude-opus-4-20250514") == 40


async def test_responder_and_fixed_text() -> None:
    async with StandIn(responder=lambda model, messages: f"{model}:{len(messages)}") as standin:
        config = standin.config()
        reply = await complete(USER, model="gpt-4o", config=config)
        assert reply.text == "gpt-4o:1"
        standin.script("gpt-4o", [Fault.ok("fixed")])
        assert (await complete(USER, model="gpt-4o", config=config)).text == "fixed"


async def test_a_failing_responder_is_a_500_that_says_why() -> None:
    def broken(model: str, messages: object) -> str:
        raise KeyError("no answer for this prompt")

    async with StandIn(responder=broken) as standin:
        with pytest.raises(Exception, match="no answer for this prompt") as caught:
            await complete(USER, model="gpt-4o", config=standin.config())
        assert caught.value.type == "ProviderRetryable"  # type: ignore[attr-defined]


def test_requests_keep_no_key_text(standin: StandIn) -> None:
    _post(
        f"{standin.url}/v1/messages",
        {"model": "claude-x", "max_tokens": 5, "messages": USER},
        {"x-api-key": "sk-ant-NEVER-STORED"},
    )
    (recorded,) = standin.requests
    assert recorded.api_key_present and recorded.api_key_fingerprint
    assert "NEVER-STORED" not in repr(standin.requests)


def test_fault_validation(standin: StandIn) -> None:
    with pytest.raises(ValueError):
        Fault.status(200)
    with pytest.raises(TypeError):
        standin.script("gpt-4o", ["429"])  # type: ignore[list-item]


def test_stop_is_idempotent_and_port_is_released() -> None:
    standin = StandIn().start()
    port = standin.port
    standin.stop()
    standin.stop()
    with pytest.raises(RuntimeError):
        _ = standin.port
    with StandIn(port=port) as again:  # the port is free to bind again
        assert again.port == port
