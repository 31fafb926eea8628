"""complete() against the stand-in, through the real anthropic and openai SDK clients."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import socket
from datetime import timedelta

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from baton_temporal.llm import (
    LLMClients,
    LLMConfig,
    LLMResponse,
    complete,
    usage_from_anthropic,
    usage_from_openai,
)
from baton_temporal.llm._complete import BilledReplyError, UnansweredRequestError
from baton_temporal.testing import Fault, StandIn
from baton_temporal.testing.standin import assessment_text

SYSTEM = "You are a meticulous reviewer of technical documents. " * 8
MESSAGES = [
    {"role": "system", "content": SYSTEM},
    {"role": "user", "content": "Assess the document 'doc-123' and give a score."},
]
BOTH = pytest.mark.parametrize("model", ["claude-sonnet-4-20250514", "gpt-4o"])


async def test_anthropic_call_sends_system_apart_and_normalises_cache_usage(
    standin: StandIn, config: LLMConfig, clients: LLMClients
) -> None:
    model = "claude-sonnet-4-20250514"
    first = await complete(MESSAGES, model=model, config=config, clients=clients)
    second = await complete(MESSAGES, model=model, config=config, clients=clients)

    sent = standin.requests[0].body
    assert sent["system"] == SYSTEM
    assert [m["role"] for m in sent["messages"]] == ["user"]
    assert sent["max_tokens"] == 1024  # Anthropic requires it; ours is the default
    assert first.raw_request == sent

    assert first.provider == "anthropic" and first.model == model
    assert first.text == json.loads(json.dumps(first.text))  # a plain string
    assert json.loads(first.text)["score"] in range(1, 11)
    assert first.stop_reason == "end_turn"
    assert first.raw_response["usage"] == standin.requests[0].usage

    # The first call wrote the system prompt to the (emulated) cache, the second read it.
    raw1, raw2 = standin.requests[0].usage, standin.requests[1].usage
    assert raw1 is not None and raw2 is not None
    assert raw1["cache_creation_input_tokens"] > 0 and raw2["cache_read_input_tokens"] > 0
    for reply, raw in ((first, raw1), (second, raw2)):
        expected = raw["input_tokens"] + raw["cache_read_input_tokens"]
        expected += raw["cache_creation_input_tokens"]
        assert reply.usage.input_tokens == expected
        assert reply.usage.cache_read_tokens == raw["cache_read_input_tokens"]
        assert reply.usage.cache_write_tokens == raw["cache_creation_input_tokens"]
        assert reply.usage.output_tokens == raw["output_tokens"]
        assert reply.usage.latency_ms is not None and reply.usage.latency_ms >= 0
    assert first.usage.input_tokens == second.usage.input_tokens  # same prompt, same total
    assert first.usage.call_id and first.usage.call_id != second.usage.call_id
    assert first.usage.requested_at is not None  # the call is priced at its own time
    assert first.usage.model_copy(
        update={"latency_ms": 5, "requested_at": None}
    ) == usage_from_anthropic(raw1, model=model, latency_ms=5, call_id=first.usage.call_id)


async def test_openai_reasoning_model_usage_and_max_tokens_translation(
    standin: StandIn, config: LLMConfig, clients: LLMClients
) -> None:
    first = await complete(
        MESSAGES, model="o3-mini", config=config, clients=clients, max_tokens=500
    )
    second = await complete(MESSAGES, model="o3-mini", config=config, clients=clients)

    sent = standin.requests[0].body
    assert sent["messages"][0] == {"role": "system", "content": SYSTEM}
    assert sent["max_completion_tokens"] == 500 and "max_tokens" not in sent

    raw1, raw2 = standin.requests[0].usage, standin.requests[1].usage
    assert raw1 is not None and raw2 is not None
    assert raw1["completion_tokens_details"]["reasoning_tokens"] > 0
    assert raw2["prompt_tokens_details"]["cached_tokens"] > 0
    for reply, raw in ((first, raw1), (second, raw2)):
        assert reply.provider == "openai" and reply.model == "o3-mini"
        assert reply.usage.input_tokens == raw["prompt_tokens"]  # cached already inside
        assert reply.usage.cache_read_tokens == raw["prompt_tokens_details"]["cached_tokens"]
        assert reply.usage.output_tokens == raw["completion_tokens"]  # reasoning inside
        assert reply.usage.reasoning_tokens == raw["completion_tokens_details"]["reasoning_tokens"]
        assert reply.usage.reasoning_tokens < reply.usage.output_tokens
        assert reply.usage.cache_write_tokens == 0
    update = {"latency_ms": None, "call_id": None, "requested_at": None}
    assert second.usage.model_copy(update=update) == (usage_from_openai(raw2, model="o3-mini"))


async def test_params_pass_through(standin: StandIn, config: LLMConfig) -> None:
    reply = await complete(
        [{"role": "user", "content": "hi"}],
        model="claude-3-5-haiku-latest",
        config=config,
        max_tokens=2,
        temperature=0.2,
        stop_sequences=["\n"],
    )
    sent = standin.requests[-1].body
    assert (sent["max_tokens"], sent["temperature"], sent["stop_sequences"]) == (2, 0.2, ["\n"])
    assert reply.stop_reason == "max_tokens" and reply.usage.output_tokens == 2


async def test_openai_compatible_server_without_a_key(standin: StandIn) -> None:
    # Only the compatible server is configured: the real OpenAI key must not travel there.
    config = LLMConfig(
        openai_api_key="sk-real-openai-key",
        openai_compatible_base_url=standin.openai_base_url,
    )
    reply = await complete(
        [{"role": "user", "content": "hello"}], model="openai-compatible:llama3.2", config=config
    )
    assert reply.provider == "openai-compatible" and reply.model == "llama3.2"
    assert reply.usage.provider == "openai-compatible"
    recorded = standin.requests[-1]
    assert recorded.model == "llama3.2"
    real = hashlib.sha256(b"sk-real-openai-key").hexdigest()[:12]
    assert recorded.api_key_fingerprint != real


async def test_default_answer_is_a_stable_assessment(standin: StandIn, config: LLMConfig) -> None:
    messages = [{"role": "user", "content": "Rate doc-7"}]
    a = await complete(messages, model="gpt-4o", config=config)
    b = await complete(messages, model="gpt-4o", config=config)
    assert a.text == b.text == assessment_text("gpt-4o", "user: Rate doc-7")


@BOTH
@pytest.mark.parametrize(
    ("fault", "delay"),
    [
        (Fault.status(429, retry_after=2), timedelta(seconds=2)),
        (Fault.status(429, retry_after_ms=1500), timedelta(milliseconds=1500)),
        (Fault.rate_limited(retry_after=None), None),
        (Fault.status(500), None),
        (Fault.status(503, retry_after=1), timedelta(seconds=1)),
        (Fault.status(529), None),
        (Fault.status(408), None),
        (Fault.status(409), None),
    ],
)
async def test_transient_statuses_are_retryable_with_the_providers_delay(
    model: str,
    fault: Fault,
    delay: timedelta | None,
    standin: StandIn,
    config: LLMConfig,
    clients: LLMClients,
) -> None:
    standin.script(model, [fault])
    with pytest.raises(ApplicationError) as caught:
        await complete(MESSAGES, model=model, config=config, clients=clients)
    err = caught.value
    assert err.type == "ProviderRetryable" and not err.non_retryable
    assert err.next_retry_delay == delay
    assert f"HTTP {fault.status_code}" in str(err)
    assert err.details[0]["status_code"] == fault.status_code
    assert standin.billed_calls() == 0


@BOTH
@pytest.mark.parametrize(
    ("fault", "words"),
    [
        (Fault.status(400, "max_tokens: must be at most 8192"), "max_tokens: must be at most 8192"),
        (Fault.status(401), None),
        (Fault.status(403), None),
        (Fault.status(404), None),
        (Fault.status(413), None),
        (Fault.status(422, "unprocessable thing"), "unprocessable thing"),
    ],
)
async def test_refusals_are_non_retryable_with_the_providers_message(
    model: str,
    fault: Fault,
    words: str | None,
    standin: StandIn,
    config: LLMConfig,
    clients: LLMClients,
) -> None:
    standin.script(model, [fault])
    with pytest.raises(ApplicationError) as caught:
        await complete(MESSAGES, model=model, config=config, clients=clients)
    err = caught.value
    assert err.type == "ProviderRejected" and err.non_retryable
    assert f"HTTP {fault.status_code}" in str(err)
    if words is None:  # the stand-in's provider-worded default must come through
        body = standin.requests[-1]
        assert body.status_code == fault.status_code
    else:
        assert words in str(err)
    if fault.status_code == 404:
        assert model in str(err)  # both providers name the model they did not find
    if fault.status_code == 401:
        key_var = "ANTHROPIC_API_KEY" if model.startswith("claude") else "OPENAI_API_KEY"
        assert key_var in str(err)


@BOTH
@pytest.mark.parametrize(
    ("fault", "words"),
    [(Fault.malformed(), "malformed"), (Fault.reset(), "could not reach")],
)
async def test_malformed_json_and_connection_reset_are_retryable(
    model: str,
    fault: Fault,
    words: str,
    standin: StandIn,
    config: LLMConfig,
    clients: LLMClients,
) -> None:
    standin.script(model, [fault, Fault.ok()])
    with pytest.raises(ApplicationError) as caught:
        await complete(MESSAGES, model=model, config=config, clients=clients)
    assert caught.value.type == "ProviderRetryable" and not caught.value.non_retryable
    assert words in str(caught.value)
    # A success status with a broken body was billed: the error carries the call's usage
    # marked unknown, for the ledger. A reset before any answer is not billed.
    if fault.kind == "malformed":
        assert isinstance(caught.value, BilledReplyError) and caught.value.usage is not None
        assert "could not be read" in (caught.value.usage.usage_unknown or "")
    else:
        assert not isinstance(caught.value, BilledReplyError)
    # The same clients recover on the next attempt (no poisoned pooled connection).
    reply = await complete(MESSAGES, model=model, config=config, clients=clients)
    assert reply.text
    assert standin.billed_calls(model) == (2 if fault.kind == "malformed" else 1)


@BOTH
async def test_slow_reply_times_out_retryable_and_is_billed_as_providers_do(
    model: str, standin: StandIn, clients: LLMClients
) -> None:
    standin.script(model, [Fault.slow(3)])
    with pytest.raises(ApplicationError) as caught:
        await complete(MESSAGES, model=model, config=standin.config(timeout_s=0.3), clients=clients)
    assert caught.value.type == "ProviderRetryable" and not caught.value.non_retryable
    assert "timed out" in str(caught.value) and "0.3 s" in str(caught.value)
    # Sent and unanswered: the provider bills it; the caller is told so (a lost reply).
    assert isinstance(caught.value, UnansweredRequestError)
    await asyncio.sleep(0.2)  # the stand-in notices the client has gone
    assert standin.billed_calls() == 1 and standin.requests[0].outcome == "client_gone"


async def test_a_connection_never_made_is_not_taken_for_a_sent_request(
    clients: LLMClients,
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens there once closed
    config = LLMConfig(
        openai_api_key=StandIn.OPENAI_API_KEY, openai_base_url=f"http://127.0.0.1:{port}/v1"
    )
    with pytest.raises(ApplicationError) as caught:
        await complete(MESSAGES, model="gpt-4o", config=config, clients=clients)
    assert caught.value.type == "ProviderRetryable" and "could not reach" in str(caught.value)
    assert not isinstance(caught.value, UnansweredRequestError | BilledReplyError)


async def test_per_call_timeout_overrides_the_config(standin: StandIn, config: LLMConfig) -> None:
    standin.script("gpt-4o", [Fault.slow(3)])
    with pytest.raises(ApplicationError, match=r"within 0\.2 s"):
        await complete(MESSAGES, model="gpt-4o", config=config, timeout=0.2)


async def test_billed_calls_count_only_successful_attempts(
    standin: StandIn, config: LLMConfig, clients: LLMClients
) -> None:
    model = "claude-opus-4-20250514"
    standin.script(model, [Fault.status(429, retry_after_ms=10), Fault.status(500), Fault.ok()])
    outcomes = []
    for _ in range(3):
        try:
            reply = await complete(MESSAGES, model=model, config=config, clients=clients)
            outcomes.append(reply.usage)
        except ApplicationError as err:
            outcomes.append(err.type)
    assert outcomes[:2] == ["ProviderRetryable", "ProviderRetryable"]
    assert standin.billed_calls(model) == 1 and len(standin.requests) == 3
    assert standin.billed_requests(model)[0].usage == usage_raw(outcomes[2])


def usage_raw(usage: object) -> dict:
    from baton_temporal.usage import LLMUsage

    assert isinstance(usage, LLMUsage)
    return {
        "input_tokens": usage.uncached_input_tokens,
        "cache_creation_input_tokens": usage.cache_write_tokens,
        "cache_read_input_tokens": usage.cache_read_tokens,
        "cache_creation": {
            "ephemeral_5m_input_tokens": usage.cache_write_tokens,
            "ephemeral_1h_input_tokens": 0,
        },
        "output_tokens": usage.output_tokens,
        "service_tier": "standard",
    }


async def test_api_keys_never_appear_in_responses_or_errors(standin: StandIn) -> None:
    anthropic_key, openai_key = "sk-ant-KEEP-THIS-SECRET-123", "sk-KEEP-THIS-SECRET-456"
    config = standin.config(anthropic_api_key=anthropic_key, openai_api_key=openai_key)
    texts: list[str] = []
    async with LLMClients() as clients:
        for model in ("claude-sonnet-4-20250514", "gpt-4o"):
            reply = await complete(MESSAGES, model=model, config=config, clients=clients)
            texts += [
                reply.model_dump_json(),
                repr(reply),
                json.dumps(reply.raw_request),
                json.dumps(reply.raw_response),
            ]
            # A provider that echoes the key back (OpenAI half-masks it; this one does not).
            faults = [
                Fault.status(401, "Incorrect API key provided: {api_key}"),
                Fault.status(429, "slow down {api_key}", retry_after=1),
                Fault.status(400, "bad request from {api_key}"),
                Fault.reset(),
                Fault.malformed(),
            ]
            standin.script(model, faults)
            for _ in faults:
                with pytest.raises(ApplicationError) as caught:
                    await complete(MESSAGES, model=model, config=config, clients=clients)
                err = caught.value
                assert err.__cause__ is None and err.__suppress_context__
                texts += [str(err), repr(err), repr(err.details), err.message]
    texts.append(repr(config))
    joined = "\n".join(texts)
    assert "KEEP-THIS-SECRET" not in joined
    assert joined.count("***") >= 6  # the echoed keys were scrubbed, not dropped silently


async def test_a_key_used_as_a_map_key_is_hidden_in_the_stored_bodies(standin: StandIn) -> None:
    # The request and reply bodies go to the debug log: a secret is hidden in map keys
    # too, not only in string values.
    key = "sk-KEEP-THIS-SECRET-789"
    config = standin.config(openai_api_key=key)
    async with LLMClients() as clients:
        reply = await complete(
            MESSAGES, model="gpt-4o", config=config, clients=clients, metadata={key: "x"}
        )
    stored = json.dumps([reply.raw_request, reply.raw_response, reply.output_items])
    assert "KEEP-THIS-SECRET" not in stored
    assert reply.raw_request["metadata"] == {"***": "x"}


async def test_complete_without_shared_clients_builds_and_closes_its_own(
    standin: StandIn, config: LLMConfig
) -> None:
    reply = await complete([{"role": "user", "content": "x"}], model="gpt-4o-mini", config=config)
    assert isinstance(reply, LLMResponse) and reply.usage.input_tokens > 0


async def test_complete_reads_config_from_the_environment(
    standin: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in standin.env().items():
        monkeypatch.setenv(name, value)
    reply = await complete([{"role": "user", "content": "x"}], model="claude-3-5-haiku-latest")
    assert reply.provider == "anthropic"
    assert standin.requests[-1].api_key_present


async def test_heartbeats_while_waiting_inside_an_activity(
    standin: StandIn, config: LLMConfig
) -> None:
    standin.set_latency(0.6, model="claude-sonnet-4-20250514")
    beats: list[tuple] = []
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, heartbeat_timeout=timedelta(seconds=0.3))
    env.on_heartbeat = lambda *details: beats.append(details)

    async def llm_activity() -> str:
        reply = await complete(MESSAGES, model="claude-sonnet-4-20250514", config=config)
        return reply.text

    text = await env.run(llm_activity)
    assert text
    assert len(beats) >= 3  # every 0.1 s (a third of the heartbeat timeout) for 0.6 s
    count = len(beats)
    await asyncio.sleep(0.3)
    assert len(beats) == count  # the heartbeat task stopped with the call


async def test_latency_is_measured_around_the_call_outside_activities_too(
    standin: StandIn, config: LLMConfig
) -> None:
    standin.set_latency(0.2)
    reply = await complete(MESSAGES, model="gpt-4o", config=config)
    assert reply.usage.latency_ms is not None and reply.usage.latency_ms >= 200
