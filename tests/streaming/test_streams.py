"""Streamed replies through the real SDK clients and the stand-in's server-sent events:
the same LLMResponse as without streaming, streaming by default where a request needs
it, huge outputs, and every way a stream can go wrong."""

from __future__ import annotations

import time

import pytest
from temporalio.exceptions import ApplicationError

from baton_temporal.llm import LLMClients, LLMConfig, complete
from baton_temporal.llm._complete import BilledReplyError
from baton_temporal.testing import Fault, StandIn

SYSTEM = {"role": "system", "content": "You grade documents. Answer in JSON, briefly."}
USER = {"role": "user", "content": "Grade: revenue grew by a tenth; costs fell."}
MODELS = {
    "messages": ("claude-sonnet-4-20250514", {}),
    "chat": ("gpt-4o", {}),
    "responses": ("o3-pro", {}),
}


@pytest.mark.parametrize("api", MODELS)
async def test_a_streamed_reply_is_the_same_llmresponse(
    api: str, standin: StandIn, config: LLMConfig, clients: LLMClients
) -> None:
    model, params = MODELS[api]
    whole = await complete([SYSTEM, USER], model=model, config=config, clients=clients, **params)
    standin.reset()  # the same emulated cache state for the streamed call
    streamed = await complete(
        [SYSTEM, USER], model=model, stream=True, config=config, clients=clients, **params
    )
    assert (whole.streamed, streamed.streamed) == (False, True)
    assert streamed.api == whole.api == api
    assert streamed.text == whole.text and streamed.stop_reason == whole.stop_reason
    assert streamed.model == whole.model
    drop = {"latency_ms", "call_id", "requested_at"}
    assert streamed.usage.model_dump(exclude=drop) == whole.usage.model_dump(exclude=drop)
    assert streamed.usage.input_tokens > 0 and streamed.usage.output_tokens > 0
    assert [i.get("type") for i in streamed.output_items] == [
        i.get("type") for i in whole.output_items
    ]
    assert streamed.raw_request["stream"] is True
    # The reply read from the events is one the SDK accepts as a non-streamed reply.
    import anthropic.types as at
    import openai.types.chat as oc
    import openai.types.responses as orr

    kind = {"messages": at.Message, "chat": oc.ChatCompletion, "responses": orr.Response}[api]
    kind.model_validate(streamed.raw_response)
    if api == "chat":  # usage at the end of a Chat Completions stream is asked for
        assert streamed.raw_request["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize(
    ("model", "max_tokens", "streams"),
    [
        ("claude-sonnet-4-20250514", 21_333, False),
        ("claude-sonnet-4-20250514", 21_334, True),  # the SDK's 10-minute estimate
        ("claude-opus-4-20250514", 8_193, True),  # the SDK's per-model limit
        ("gpt-4o", 30_000, True),
        ("gpt-4o", 4_000, False),
        ("openai-compatible:llama3.2", 30_000, False),  # only when asked
    ],
)
async def test_requests_that_need_streaming_stream_by_default(
    model: str, max_tokens: int, streams: bool, config: LLMConfig, clients: LLMClients
) -> None:
    reply = await complete(
        [USER], model=model, max_tokens=max_tokens, config=config, clients=clients
    )
    assert reply.streamed is streams


async def test_stream_false_on_a_request_that_needs_streaming_is_refused(
    standin: StandIn, config: LLMConfig, clients: LLMClients
) -> None:
    with pytest.raises(ApplicationError) as caught:
        await complete(
            [USER],
            model="claude-sonnet-4-20250514",
            max_tokens=64_000,
            stream=False,
            config=config,
            clients=clients,
        )
    assert caught.value.type == "InvalidLLMRequest" and caught.value.non_retryable
    assert "leave stream= out" in caught.value.message
    assert standin.requests == []


@pytest.mark.parametrize("api", MODELS)
async def test_tens_of_thousands_of_output_tokens_stream_whole(
    api: str, standin: StandIn, config: LLMConfig, clients: LLMClients
) -> None:
    model, _ = MODELS[api]
    text = "".join(f"line {i:06d} of a long report.\n" for i in range(6_000))  # ~50k tokens
    standin.script(model, [Fault.stream(text, chunk_chars=120)])
    started = time.perf_counter()
    reply = await complete([USER], model=model, max_tokens=64_000, config=config, clients=clients)
    took = time.perf_counter() - started
    assert reply.streamed and reply.text == text
    (billed,) = standin.billed_requests()
    assert reply.usage.output_tokens >= len(text) // 4 > 40_000
    assert reply.usage.output_tokens == (
        billed.usage["output_tokens"] if api != "chat" else billed.usage["completion_tokens"]
    )
    print(f"\n{api}: {len(text):,} chars in {len(text) // 120:,} deltas read in {took:.2f} s")


BREAKS = {
    "cut mid-stream": Fault.stream(cut_after=3),
    "reset mid-stream": Fault.stream(cut_after=3, reset=True),
    "garbled event": Fault.stream(garble_at=2),
    "overloaded error event": Fault.stream(error_at=2),
}


@pytest.mark.parametrize("api", MODELS)
@pytest.mark.parametrize("name", BREAKS)
async def test_a_broken_stream_is_a_billed_retryable_failure_with_the_usage_reported(
    name: str, api: str, standin: StandIn, config: LLMConfig, clients: LLMClients
) -> None:
    model, _ = MODELS[api]
    standin.script(model, [BREAKS[name]])
    with pytest.raises(BilledReplyError) as caught:
        await complete([SYSTEM, USER], model=model, stream=True, config=config, clients=clients)
    err = caught.value
    assert err.type == "ProviderRetryable" and not err.non_retryable, err.message
    assert "stream" in err.message or "error event" in err.message
    # httpx's ReadError for a reset has no text of its own: the message says what it was.
    assert ": )" not in err.message, err.message
    (sent,) = standin.requests
    if api == "messages":
        # message_start reported the whole input before the break: it is kept.
        assert err.usage is not None and sent.usage is not None
        reported = sent.usage
        total = (
            reported["input_tokens"]
            + reported["cache_creation_input_tokens"]
            + reported["cache_read_input_tokens"]
        )
        assert err.usage.input_tokens == total > 0
    else:
        # OpenAI reports usage only at the end: the call is billed, its usage unknown
        # (call_llm records it as a lost reply).
        assert err.usage is None
    # The next attempt succeeds.
    reply = await complete([SYSTEM, USER], model=model, stream=True, config=config, clients=clients)
    assert reply.text


async def test_an_error_event_the_provider_will_refuse_again_is_not_retried(
    standin: StandIn, config: LLMConfig, clients: LLMClients
) -> None:
    standin.script(
        "claude-sonnet-4-20250514", [Fault.stream(error_at=3, error_type="invalid_request_error")]
    )
    with pytest.raises(BilledReplyError) as caught:
        await complete(
            [USER], model="claude-sonnet-4-20250514", stream=True, config=config, clients=clients
        )
    assert caught.value.type == "ProviderRejected" and caught.value.non_retryable


@pytest.mark.parametrize("fault", [Fault.malformed(), Fault.reset(), Fault.status(529)])
async def test_a_stream_that_never_began_is_not_billed(
    fault: Fault, standin: StandIn, config: LLMConfig, clients: LLMClients
) -> None:
    standin.script("claude-sonnet-4-20250514", [fault])
    with pytest.raises(ApplicationError) as caught:
        await complete(
            [USER], model="claude-sonnet-4-20250514", stream=True, config=config, clients=clients
        )
    assert not isinstance(caught.value, BilledReplyError)
    assert caught.value.type == "ProviderRetryable"


async def test_usage_missing_from_the_final_event(
    standin: StandIn, config: LLMConfig, clients: LLMClients
) -> None:
    # Anthropic: message_start's counts stand (input whole, output as last reported).
    standin.script("claude-sonnet-4-20250514", [Fault.stream(drop_usage=True)])
    reply = await complete(
        [USER], model="claude-sonnet-4-20250514", stream=True, config=config, clients=clients
    )
    (sent,) = standin.requests
    assert sent.usage is not None and reply.usage.input_tokens == sent.usage["input_tokens"] > 0
    assert reply.text and reply.usage.output_tokens == sent.usage["output_tokens"] == 1


async def test_a_stall_outside_an_activity_is_bounded_by_the_request_timeout(
    standin: StandIn, clients: LLMClients
) -> None:
    standin.script("gpt-4o", [Fault.stream(stall_after=4)])
    with pytest.raises(BilledReplyError) as caught:
        await complete(
            [USER],
            model="gpt-4o",
            stream=True,
            config=standin.config(timeout_s=0.5),
            clients=clients,
        )
    assert "stalled: no data for 0.5 s" in caught.value.message
    assert caught.value.type == "ProviderRetryable"


def test_events_split_anywhere_with_crlf_comments_and_multiline_data_decode_alike() -> None:
    from baton_temporal.llm import _streaming as streaming

    raw = (
        b": keep-alive comment\r\n"
        b'event: message_start\r\ndata: {"a":\r\ndata: 1}\r\n\r\n'
        b"event: ping\ndata: {}\n\n"
        b"data: [DONE]\n\n"
    )
    expected = [("message_start", {"a": 1}), ("ping", {}), (None, None)]
    for size in range(1, len(raw) + 1):
        decoder = streaming._SSEDecoder()
        got = []
        for i in range(0, len(raw), size):
            got += decoder.feed(raw[i : i + size])
        assert got == expected, size


def test_an_event_without_end_is_refused_not_buffered_for_ever(monkeypatch) -> None:
    from baton_temporal.llm import _streaming as streaming

    monkeypatch.setattr(streaming, "MAX_EVENT_BYTES", 1000)
    decoder = streaming._SSEDecoder()
    with pytest.raises(streaming._Garbled, match="over 1,000 bytes"):
        for _ in range(100):
            list(decoder.feed(b"x" * 100))


def test_the_events_before_a_garbled_one_in_the_same_chunk_still_count() -> None:
    # A transport may hand over all it buffered at once (aiohttp does): the usage in the
    # events before the garbled one must not go down with it.
    from baton_temporal.llm import _streaming as streaming

    decoder = streaming._SSEDecoder()
    chunk = (
        b'event: message_start\ndata: {"usage": {"input_tokens": 12}}\n\n'
        b'event: ping\ndata: {"type": "ping"}\n\n'
        b'event: content_block_start\ndata: {"broken\n\n'
    )
    seen = []
    with pytest.raises(streaming._Garbled, match="'content_block_start' is not JSON"):
        for event, data in decoder.feed(chunk):
            seen.append((event, data))
    assert seen == [
        ("message_start", {"usage": {"input_tokens": 12}}),
        ("ping", {"type": "ping"}),
    ]


async def test_stall_timeout_overrides_the_stall_limit_and_is_checked(
    standin: StandIn, config: LLMConfig, clients: LLMClients
) -> None:
    standin.script("claude-sonnet-4-20250514", [Fault.stream("w" * 400, stall_after=6)])
    with pytest.raises(BilledReplyError) as caught:
        await complete(
            [USER],
            model="claude-sonnet-4-20250514",
            stream=True,
            stall_timeout=0.3,
            config=config,
            clients=clients,
        )
    assert "stalled: no data for 0.3 s" in caught.value.message
    for bad in (0, -1, "60", True):
        with pytest.raises(ApplicationError) as refused:
            await complete(
                [USER], model="gpt-4o", stall_timeout=bad, config=config, clients=clients
            )
        assert refused.value.type == "InvalidLLMRequest" and refused.value.non_retryable
        assert "longest silence allowed mid-stream in seconds" in refused.value.message
    assert len(standin.requests) == 1


async def test_an_error_as_the_first_event_is_not_billed(
    standin: StandIn, config: LLMConfig, clients: LLMClients
) -> None:
    standin.script("claude-sonnet-4-20250514", [Fault.stream(error_at=0)])
    with pytest.raises(ApplicationError) as caught:
        await complete(
            [USER], model="claude-sonnet-4-20250514", stream=True, config=config, clients=clients
        )
    assert not isinstance(caught.value, BilledReplyError)
    assert caught.value.type == "ProviderRetryable"
    assert "error event after 0 event(s): overloaded_error: Overloaded" in caught.value.message


def test_tool_calls_and_thinking_accumulate_into_replies_the_sdks_accept() -> None:
    import anthropic.types as at
    import openai.types.chat as oc

    from baton_temporal.llm import _streaming as streaming

    anthropic_events = [
        (
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": "msg_1",
                    "type": "message",
                    "role": "assistant",
                    "model": "claude-x",
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {
                        "input_tokens": 50,
                        "cache_read_input_tokens": 10,
                        "output_tokens": 1,
                    },
                },
            },
        ),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "thinking", "thinking": "", "signature": ""},
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "thinking_delta", "thinking": "Let me see."},
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "signature_delta", "signature": "sig"},
            },
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 1,
                "content_block": {"type": "tool_use", "id": "tu_1", "name": "score", "input": {}},
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 1,
                "delta": {"type": "input_json_delta", "partial_json": '{"score": '},
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 1,
                "delta": {"type": "input_json_delta", "partial_json": "7}"},
            },
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 1}),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                "usage": {"output_tokens": 30, "input_tokens": None},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
    acc = streaming._accumulator("messages")
    for event, data in anthropic_events:
        acc.feed(event, data)
    message = at.Message.model_validate(acc.final())
    assert message.stop_reason == "tool_use"
    assert message.content[0].type == "thinking" and message.content[0].thinking == "Let me see."
    assert message.content[1].type == "tool_use" and message.content[1].input == {"score": 7}
    assert (message.usage.input_tokens, message.usage.output_tokens) == (50, 30)
    assert message.usage.cache_read_input_tokens == 10  # kept from message_start

    head = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o"}
    chunks = [
        {
            **head,
            "choices": [
                {
                    "index": 0,
                    "delta": {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {
                                "index": 0,
                                "id": "call_1",
                                "type": "function",
                                "function": {"name": "score", "arguments": ""},
                            }
                        ],
                    },
                }
            ],
        },
        {
            **head,
            "choices": [
                {
                    "index": 0,
                    "delta": {"tool_calls": [{"index": 0, "function": {"arguments": '{"score"'}}]},
                }
            ],
        },
        {
            **head,
            "choices": [
                {
                    "index": 0,
                    "delta": {"tool_calls": [{"index": 0, "function": {"arguments": ": 7}"}}]},
                }
            ],
        },
        {**head, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
        {
            **head,
            "choices": [],
            "usage": {"prompt_tokens": 20, "completion_tokens": 9, "total_tokens": 29},
        },
        None,
    ]
    acc = streaming._accumulator("chat")
    for data in chunks:
        acc.feed(None, data)
    completion = oc.ChatCompletion.model_validate(acc.final())
    call = completion.choices[0].message.tool_calls[0]
    assert (call.id, call.function.name, call.function.arguments) == (
        "call_1",
        "score",
        '{"score": 7}',
    )
    assert completion.choices[0].finish_reason == "tool_calls"
    assert completion.usage is not None and completion.usage.completion_tokens == 9


async def test_a_server_that_answers_a_stream_request_whole_is_read_whole(
    standin: StandIn, config: LLMConfig, clients: LLMClients
) -> None:
    # Some OpenAI-compatible servers ignore stream=true and send one JSON reply.
    body = {
        "id": "x",
        "object": "chat.completion",
        "created": 1,
        "model": "llama3.2",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "whole"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
    }
    standin.script("llama3.2", [Fault.reply(body)])
    reply = await complete(
        [USER], model="openai-compatible:llama3.2", stream=True, config=config, clients=clients
    )
    assert (reply.text, reply.streamed) == ("whole", False)
    assert (reply.usage.input_tokens, reply.usage.output_tokens) == (5, 2)


@pytest.mark.parametrize(
    ("model", "after", "limits"),
    [
        # Output flowing (Anthropic from message_start): the stall limit, 0.3 s here.
        ("claude-sonnet-4-20250514", 4, {"stall_timeout": 0.3}),
        # Before the first text (Chat's role-only first chunk): the request timeout.
        ("gpt-4o", 1, {}),
    ],
)
async def test_keep_alive_comments_do_not_hold_off_the_stall_limit(
    standin: StandIn, clients: LLMClients, model: str, after: int, limits: dict
) -> None:
    # Bytes, but no event, every 0.1 s for 3 s: a server that keeps the connection busy
    # must not keep the call (and the step's heartbeats) going past its limits.
    standin.script(model, [Fault.stream(stall_after=after, stall_for=3, keepalive_every=0.1)])
    # Without the limits the stream would end well after the comments, and succeed.
    with pytest.raises(BilledReplyError) as caught:
        await complete(
            [USER],
            model=model,
            stream=True,
            config=standin.config(timeout_s=0.5),
            clients=clients,
            **limits,
        )
    assert caught.value.type == "ProviderRetryable" and "stalled" in caught.value.message
