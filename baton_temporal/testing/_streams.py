"""The stand-in's streaming and Responses wire formats (see ``standin.py``).

Replies are built whole (as the non-streamed answer would be) and then cut into the
events each provider sends: Anthropic Messages (``message_start`` ... ``message_stop``),
OpenAI Chat Completions chunks (usage in a last ``choices: []`` chunk when the request
set ``stream_options.include_usage``, then ``[DONE]``), and OpenAI Responses
(``response.created`` ... ``response.completed``). :class:`StreamPlan` says how to
misbehave: a delay per event, a stall, a cut-off, a garbled event, usage left out.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["StreamPlan", "chat_events", "responses_reply", "sse_events"]

# Characters of text per delta event: a few tokens, as the providers send.
DEFAULT_CHUNK_CHARS = 16


@dataclass(frozen=True)
class StreamPlan:
    """How a streamed answer is sent. Events are counted from 0 in the order sent.

    ``chunk_delay``: seconds before each event. ``stall_after``: after that many events,
    send nothing for ``stall_for`` seconds (None: until the client hangs up).
    ``cut_after``: after that many events, drop the connection (``reset``: with a TCP
    reset, else an orderly close mid-body). ``garble_at``: that event's data is not JSON.
    ``drop_usage``: the final event carries no usage (Anthropic's ``message_delta``
    keeps none; ``message_start`` still reports the input). ``error_at``: an error event
    instead of that event (``error_type`` as the provider words it). ``chunk_chars``:
    text characters per delta. ``keepalive_every``: during the stall, an SSE comment
    (``: keep-alive``) every that many seconds: bytes, but no event.
    """

    chunk_delay: float = 0.0
    stall_after: int | None = None
    stall_for: float | None = None
    cut_after: int | None = None
    reset: bool = False
    garble_at: int | None = None
    drop_usage: bool = False
    error_at: int | None = None
    error_type: str = "overloaded_error"
    chunk_chars: int = DEFAULT_CHUNK_CHARS
    keepalive_every: float | None = None


def _pieces(text: str, size: int) -> list[str]:
    size = max(1, size)
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def sse_events(
    api: str, reply: Mapping[str, Any], plan: StreamPlan, include_usage: bool
) -> Iterator[tuple[str | None, Any]]:
    """``(event name, data)`` pairs of ``reply`` streamed in ``api``'s format; data None
    is the ``[DONE]`` line."""
    if api == "messages":
        return _anthropic_events(reply, plan)
    if api == "responses":
        return _responses_events(reply, plan)
    return chat_events(reply, plan, include_usage)


def _anthropic_events(reply: Mapping[str, Any], plan: StreamPlan) -> Iterator[tuple[str, Any]]:
    usage = dict(reply["usage"])
    start_usage = {**usage, "output_tokens": min(1, usage.get("output_tokens", 0))}
    message = {**reply, "content": [], "stop_reason": None, "stop_sequence": None}
    yield "message_start", {"type": "message_start", "message": {**message, "usage": start_usage}}
    yield "ping", {"type": "ping"}
    for index, block in enumerate(reply["content"]):
        yield (
            "content_block_start",
            {"type": "content_block_start", "index": index, "content_block": {**block, "text": ""}},
        )
        for piece in _pieces(block.get("text", ""), plan.chunk_chars):
            yield (
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": index,
                    "delta": {"type": "text_delta", "text": piece},
                },
            )
        yield "content_block_stop", {"type": "content_block_stop", "index": index}
    delta: dict[str, Any] = {
        "type": "message_delta",
        "delta": {"stop_reason": reply["stop_reason"], "stop_sequence": None},
    }
    if not plan.drop_usage:
        delta["usage"] = {"output_tokens": usage.get("output_tokens", 0)}
    yield "message_delta", delta
    yield "message_stop", {"type": "message_stop"}


def chat_events(
    reply: Mapping[str, Any], plan: StreamPlan, include_usage: bool
) -> Iterator[tuple[None, Any]]:
    head = {
        "id": reply["id"],
        "object": "chat.completion.chunk",
        "created": reply["created"],
        "model": reply["model"],
        "system_fingerprint": reply.get("system_fingerprint"),
    }
    extra = {"usage": None} if include_usage else {}
    choice = reply["choices"][0]

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {
            **head,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
            **extra,
        }

    yield None, chunk({"role": "assistant", "content": "", "refusal": None})
    for piece in _pieces(choice["message"]["content"] or "", plan.chunk_chars):
        yield None, chunk({"content": piece})
    for index, call in enumerate(choice["message"].get("tool_calls") or ()):
        # As OpenAI streams a tool call: its id and name first, then its arguments in pieces.
        function = call["function"]
        opening = {"name": function["name"], "arguments": ""}
        yield (
            None,
            chunk(
                {
                    "tool_calls": [
                        {"index": index, "id": call["id"], "type": "function", "function": opening}
                    ]
                }
            ),
        )
        for piece in _pieces(function["arguments"], plan.chunk_chars):
            yield None, chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
    yield None, chunk({}, choice["finish_reason"])
    if include_usage and not plan.drop_usage:
        yield None, {**head, "choices": [], "usage": reply["usage"]}
    yield None, None


def _responses_events(reply: Mapping[str, Any], plan: StreamPlan) -> Iterator[tuple[str, Any]]:
    pending = {
        **reply,
        "status": "in_progress",
        "output": [],
        "usage": None,
        "incomplete_details": None,
    }
    seq = iter(range(1_000_000))

    def event(kind: str, **fields: Any) -> tuple[str, dict[str, Any]]:
        return kind, {"type": kind, "sequence_number": next(seq), **fields}

    yield event("response.created", response=pending)
    yield event("response.in_progress", response=pending)
    for index, item in enumerate(reply["output"]):
        if item["type"] != "message":
            yield event("response.output_item.added", output_index=index, item=item)
            yield event("response.output_item.done", output_index=index, item=item)
            continue
        text = item["content"][0]["text"]
        empty = {**item, "status": "in_progress", "content": []}
        part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
        yield event("response.output_item.added", output_index=index, item=empty)
        yield event(
            "response.content_part.added",
            item_id=item["id"],
            output_index=index,
            content_index=0,
            part=part,
        )
        for piece in _pieces(text, plan.chunk_chars):
            yield event(
                "response.output_text.delta",
                item_id=item["id"],
                output_index=index,
                content_index=0,
                delta=piece,
                logprobs=[],
            )
        yield event(
            "response.output_text.done",
            item_id=item["id"],
            output_index=index,
            content_index=0,
            text=text,
            logprobs=[],
        )
        yield event(
            "response.content_part.done",
            item_id=item["id"],
            output_index=index,
            content_index=0,
            part={**part, "text": text},
        )
        yield event("response.output_item.done", output_index=index, item=item)
    final = dict(reply)
    if plan.drop_usage:
        final["usage"] = None
    kind = "response.incomplete" if reply.get("status") == "incomplete" else "response.completed"
    yield event(kind, response=final)


def error_event(api: str, error_type: str) -> tuple[str | None, dict[str, Any]]:
    """A mid-stream error event in ``api``'s format."""
    message = "Overloaded" if "overloaded" in error_type else "The server had an error"
    if api == "messages":
        return "error", {"type": "error", "error": {"type": error_type, "message": message}}
    if api == "responses":
        return "error", {"type": "error", "code": error_type, "message": message, "param": None}
    return None, {"error": {"type": error_type, "message": message, "code": None}}


def encode_event(event: str | None, data: Any, garble: bool = False) -> bytes:
    """One server-sent event's bytes."""
    if data is None:
        payload = "[DONE]"
    else:
        payload = json.dumps(data)
        if garble:
            payload = payload[: len(payload) // 2]
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {payload}\n\n".encode()


def responses_input_messages(payload: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A Responses request's ``instructions`` + ``input`` as chat-style messages."""
    messages: list[dict[str, Any]] = []
    instructions = payload.get("instructions")
    if isinstance(instructions, str) and instructions:
        messages.append({"role": "system", "content": instructions})
    items = payload.get("input")
    if isinstance(items, str):
        return [*messages, {"role": "user", "content": items}]
    for item in items if isinstance(items, list) else ():
        if not isinstance(item, dict) or "role" not in item:
            continue
        content = item.get("content")
        if isinstance(content, list):
            content = "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
        role = "system" if item["role"] == "developer" else item["role"]
        messages.append({"role": role, "content": content if isinstance(content, str) else ""})
    return messages


def responses_reply(
    n: int,
    model: str,
    text: str,
    *,
    prompt_tokens: int,
    cached: int,
    visible: int,
    reasoning: int,
    truncated: bool,
    payload: Mapping[str, Any],
    tool_call: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A Responses API reply body (``object: "response"``) as OpenAI sends it; a forced
    tool's call is a ``function_call`` output item instead of the message."""
    output: list[dict[str, Any]] = []
    if reasoning:
        output.append({"type": "reasoning", "id": f"rs_standin_{n:06d}", "summary": []})
    if tool_call is not None:
        output.append(
            {
                "type": "function_call",
                "id": f"fc_standin_{n:06d}",
                "call_id": f"call_standin_{n:06d}",
                "name": tool_call["name"],
                "arguments": text,
                "status": "completed",
            }
        )
    else:
        output.append(
            {
                "type": "message",
                "id": f"msg_standin_{n:06d}",
                "status": "incomplete" if truncated else "completed",
                "role": "assistant",
                "content": [
                    {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
                ],
            }
        )
    return {
        "id": f"resp_standin_{n:06d}",
        "object": "response",
        "created_at": int(time.time()),
        "status": "incomplete" if truncated else "completed",
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if truncated else None,
        "instructions": payload.get("instructions"),
        "max_output_tokens": payload.get("max_output_tokens"),
        "model": model,
        "output": output,
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": "medium" if reasoning else None, "summary": None},
        "service_tier": "default",
        "store": True,
        "temperature": payload.get("temperature", 1.0),
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": {
            "input_tokens": prompt_tokens,
            "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": 0},
            "output_tokens": visible + reasoning,
            "output_tokens_details": {"reasoning_tokens": reasoning},
            "total_tokens": prompt_tokens + visible + reasoning,
        },
        "user": None,
        "metadata": {},
    }
