"""Streamed replies: read a provider's server-sent events into the reply a non-streamed
call would have returned, heartbeating as they arrive and noticing a stream that stalls.

Why a call streams: the Anthropic SDK refuses, without streaming, a request it estimates
to run over 10 minutes (``max_tokens`` above ~21,333, or above 8,192 for Claude Opus 4);
the same estimate (128,000 tokens an hour) makes long OpenAI requests stream too. Any call
can ask with ``stream=True``. The request goes through the provider's own SDK client
(``with_streaming_response``); the events are read here, so that what comes back is the
same JSON reply (usage included) as a non-streamed call, priced the same way.

Time limits while a stream is open:

* until the first output event (an OpenAI model may think for minutes in silence, as it
  would without streaming): the request timeout, heartbeating meanwhile. Anthropic
  streams thinking and pings while quiet, so its ``message_start`` counts as output;
* after it, no gap between events longer than the *stall limit*: 80% of the running
  activity's heartbeat timeout (the request timeout outside an activity). A stalled
  stream fails the attempt (retryable) before Temporal's heartbeat timeout would, and
  what the provider had reported of its usage is kept.

A stream that breaks off, stalls or sends a garbled event after it began is a *billed*
call: :class:`StreamBroken` carries the usage reported so far (Anthropic's
``message_start`` counts the whole input) for the caller to record.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from ._beats import MAX_CALL_BEAT_INTERVAL_S, call_beats
from ._errors import INVALID_REQUEST, PROVIDER_REJECTED, PROVIDER_RETRYABLE

__all__ = [
    "MAX_EVENT_BYTES",
    "MAX_STREAM_BYTES",
    "STALL_FRACTION",
    "StreamBroken",
    "prepare_stream_body",
    "read_stream",
    "stall_limit",
    "wants_stream",
]

log = logging.getLogger(__name__)

# The Anthropic SDK's estimate: 128,000 output tokens an hour; over 10 minutes, stream.
_TOKENS_PER_HOUR = 128_000
_NONSTREAMING_LIMIT_S = 600
# A stall fails the attempt at this share of the heartbeat timeout: before Temporal
# would time the attempt out, so the usage reported so far is recorded by this worker.
STALL_FRACTION = 0.8
# One server-sent event larger than this is not a provider's (their deltas are small,
# final events hold the reply once): refused rather than buffered without end.
MAX_EVENT_BYTES = 32 * 1024 * 1024
# A whole stream larger than this is not a reply (100,000 output tokens stream as a few
# MB of events): refused rather than read into memory without end.
MAX_STREAM_BYTES = 256 * 1024 * 1024


class StreamBroken(Exception):
    """A stream that ended badly after it was opened.

    ``error`` is what the attempt should fail with; ``partial`` a reply-shaped dict with
    the usage the provider reported before the end (None if it reported none); ``billed``
    whether the provider had begun answering (then the call is recorded either way).
    """

    def __init__(self, error: ApplicationError, partial: dict[str, Any] | None, billed: bool):
        super().__init__(error.message)
        self.error = error
        self.partial = partial
        self.billed = billed


def wants_stream(
    provider: str, name: str, body: Mapping[str, Any], client: Any, asked: Any
) -> bool:
    """Whether this request streams: asked for, or needed (see the module docs).

    Raises ``InvalidLLMRequest`` for ``stream=False`` on a request the Anthropic SDK would
    refuse without streaming, and for a ``stream`` that is not a bool.
    """
    if asked is not None and not isinstance(asked, bool):
        raise ApplicationError(
            f"stream={asked!r}: use stream=True, stream=False, or leave it out to stream "
            "only when the request needs it",
            type=INVALID_REQUEST,
            non_retryable=True,
        )
    need = needs_stream(provider, name, body, client)
    if asked is False and need and provider == "anthropic":
        raise ApplicationError(
            f"stream=False, but {need}; leave stream= out (or pass stream=True), or lower "
            "max_tokens",
            type=INVALID_REQUEST,
            non_retryable=True,
        )
    return asked if asked is not None else need is not None


def needs_stream(provider: str, name: str, body: Mapping[str, Any], client: Any) -> str | None:
    """Why this request must stream, or None. Only Anthropic and OpenAI proper: a local
    OpenAI-compatible server streams only when asked (not all report usage in streams)."""
    limit = next(
        (
            body[k]
            for k in ("max_tokens", "max_completion_tokens", "max_output_tokens")
            if k in body
        ),
        None,
    )
    if not isinstance(limit, int) or isinstance(limit, bool) or limit <= 0:
        return None
    if provider == "anthropic":
        # The SDK's own rule, so that an SDK upgrade that changes it is followed.
        check = getattr(client, "_calculate_nonstreaming_timeout", None)
        table = _anthropic_nonstreaming_tokens()
        if check is not None and table is not None:
            try:
                check(limit, table.get(name))
            except ValueError:
                return (
                    f"the Anthropic SDK requires streaming for max_tokens={limit} with "
                    f"{name!r} (the reply may take over 10 minutes)"
                )
            return None
    if provider in ("anthropic", "openai") and (
        3600 * limit / _TOKENS_PER_HOUR > _NONSTREAMING_LIMIT_S
    ):
        return f"max_tokens={limit} may take over 10 minutes to generate"
    return None


def _anthropic_nonstreaming_tokens() -> Mapping[str, int] | None:
    try:
        from anthropic._constants import MODEL_NONSTREAMING_TOKENS
    except ImportError:  # a release that moved it: the estimate below applies
        return None
    return MODEL_NONSTREAMING_TOKENS


def prepare_stream_body(api: str, body: dict[str, Any]) -> dict[str, Any]:
    """The body with streaming on; Chat Completions also asks for usage at the end."""
    out = {**body, "stream": True}
    if api == "chat":
        options = out.get("stream_options")
        options = dict(options) if isinstance(options, Mapping) else {}
        options["include_usage"] = True
        out["stream_options"] = options
    return out


def stall_limit(request_timeout_s: float) -> float:
    """Longest gap between events once output flows (see the module docs)."""
    if activity.in_activity():
        info = activity.info()
        if not info.is_local and info.heartbeat_timeout:
            return min(request_timeout_s, info.heartbeat_timeout.total_seconds() * STALL_FRACTION)
    return request_timeout_s


async def read_stream(
    manager: Any,
    api: str,
    *,
    who: str,
    first_limit_s: float,
    stall_limit_s: float,
    redact: Callable[[str], str],
) -> tuple[dict[str, Any], bool]:
    """Open the SDK's streaming response ``manager``; return the whole reply, and whether
    it came as a stream.

    SDK errors while opening (an error status) propagate unchanged; anything that goes
    wrong after is a :class:`StreamBroken`. A server that answers a streamed request with
    a plain JSON body (some OpenAI-compatible ones) has that body returned.
    """
    beat = _Beat()
    response = await _open(manager, beat)  # SDK errors (an error status) propagate
    acc = _accumulator(api)
    pending: asyncio.Future[bytes] | None = None
    try:
        content_type = str(response.http_response.headers.get("content-type", ""))
        if "text/event-stream" not in content_type:
            # Not a stream after all: the reply, as a non-streamed call gets it.
            return _whole_json(await response.http_response.aread()), False
        decoder = _SSEDecoder()
        chunks = response.iter_bytes().__aiter__()
        loop = asyncio.get_running_loop()
        # The limits measure the time since the last *event*: bytes that make none (SSE
        # comments such as keep-alives, an event dribbled a byte at a time) do not reset
        # them, or a server could hold the step until its start-to-close timeout.
        last_event = loop.time()
        while not acc.done:
            if acc.output_started:
                # Output flows: each read gets what is left of the stall limit. No task per
                # read (a stream has tens of thousands of events); a stall cancels the read.
                remaining = last_event + stall_limit_s - loop.time()
                if remaining <= 0:
                    raise _Stalled(stall_limit_s)
                try:
                    async with asyncio.timeout(remaining):
                        chunk = await chunks.__anext__()
                except StopAsyncIteration:
                    break
                except TimeoutError:
                    raise _Stalled(stall_limit_s) from None
            else:
                # The model may think for minutes: wait without cancelling the read, and
                # heartbeat meanwhile, as a call that does not stream does.
                pending = asyncio.ensure_future(chunks.__anext__())
                deadline = last_event + first_limit_s
                while not pending.done():
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        raise _Stalled(first_limit_s)
                    await asyncio.wait({pending}, timeout=min(remaining, beat.interval))
                    if not pending.done():
                        beat.now()
                try:
                    chunk = pending.result()
                except StopAsyncIteration:
                    break
                finally:
                    pending = None
            for event, data in decoder.feed(chunk):
                last_event = loop.time()
                acc.feed(event, data)
                if acc.done:
                    break
            beat.maybe()
        if not acc.done:
            raise _Truncated()
        return acc.final(), True
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        if type(exc).__name__ == "ReadTimeout":
            # The HTTP client's read timeout (the request timeout) ran out before the stall
            # limit did: a stall all the same. aiohttp's counts from the last byte rather
            # than the last event, so with equal limits it often fires first.
            limit = min(stall_limit_s, first_limit_s) if acc.output_started else first_limit_s
            exc = _Stalled(limit)
        raise StreamBroken(
            _stream_error(exc, acc, who, redact), acc.partial(), acc.events > 0
        ) from None
    finally:
        if pending is not None and not pending.done():
            pending.cancel()
            with contextlib.suppress(BaseException):
                await pending
        with contextlib.suppress(Exception):
            await manager.__aexit__(None, None, None)


async def _open(manager: Any, beat: _Beat) -> Any:
    """Send the request and wait for the response head, heartbeating meanwhile: a server
    may hold its headers back while the model starts (the SDK's timeout bounds it)."""
    opening = asyncio.ensure_future(manager.__aenter__())
    try:
        wait = beat.first
        while not opening.done():
            await asyncio.wait({opening}, timeout=wait)
            if not opening.done():
                beat.now()
            wait = beat.interval
    except asyncio.CancelledError:
        opening.cancel()
        with contextlib.suppress(BaseException):
            await opening
            await manager.__aexit__(None, None, None)  # it had opened after all
        raise
    return opening.result()


def _whole_json(content: bytes) -> dict[str, Any]:
    try:
        data = json.loads(content)
    except ValueError as exc:
        raise _Garbled(f"a JSON reply that does not parse: {exc}") from None
    if not isinstance(data, dict):
        raise _Garbled(f"a JSON {type(data).__name__}, not an object")
    return data


class _Stalled(Exception):
    def __init__(self, seconds: float) -> None:
        super().__init__(seconds)
        self.seconds = seconds


class _Truncated(Exception):
    pass


class _Garbled(Exception):
    pass


class _ProviderError(Exception):
    """An error event in the stream: ``retryable`` as the provider's words say."""

    def __init__(self, message: str, kind: str, retryable: bool) -> None:
        super().__init__(message)
        self.kind = kind
        self.retryable = retryable


def _stream_error(
    exc: BaseException, acc: _Accumulator, who: str, redact: Callable[[str], str]
) -> ApplicationError:
    after = f"after {acc.events} event(s)"
    details = {"provider_stream_events": acc.events}
    if isinstance(exc, _Stalled):
        text = (
            f"the stream from {who} stalled: no data for {exc.seconds:g} s {after} (the stall "
            f"limit is {STALL_FRACTION:g} of the step's heartbeat timeout once output flows, "
            "the request timeout before; raise heartbeat_timeout for models that pause "
            "longer); will be retried"
        )
        return ApplicationError(redact(text), details, type=PROVIDER_RETRYABLE)
    if isinstance(exc, _ProviderError):
        kind = PROVIDER_RETRYABLE if exc.retryable else PROVIDER_REJECTED
        note = "will be retried" if exc.retryable else "not retried"
        text = f"{who} sent an error event {after}: {exc.kind}: {exc}; {note}"
        return ApplicationError(redact(text), details, type=kind, non_retryable=not exc.retryable)
    if isinstance(exc, _Truncated):
        why = "ended without its final event"
    elif isinstance(exc, _Garbled):
        why = f"sent a malformed event ({exc})"
    else:
        # httpx's errors for a reset connection have no text of their own.
        why = (
            f"broke off ({type(exc).__name__}: {str(exc) or 'the connection was closed or reset'})"
        )
    return ApplicationError(
        redact(f"the stream from {who} {why} {after}; will be retried"),
        details,
        type=PROVIDER_RETRYABLE,
    )


class _Beat:
    """Heartbeats inside a (non-local) activity, at most once per interval."""

    def __init__(self) -> None:
        self.on = activity.in_activity() and not activity.info().is_local
        # The first beat counts from when Temporal started the attempt (see _beats.py).
        self.interval, self.first = (
            call_beats(activity.info())
            if self.on
            else (MAX_CALL_BEAT_INTERVAL_S, MAX_CALL_BEAT_INTERVAL_S)
        )
        self._last = 0.0
        self._loop = asyncio.get_running_loop()

    def maybe(self) -> None:
        if self._loop.time() - self._last >= self.interval:
            self.now()

    def now(self) -> None:
        if not self.on:
            return
        self._last = self._loop.time()
        try:
            activity.heartbeat()
        except Exception:  # a failing heartbeat must not fail the call it accompanies
            log.warning("LLM stream heartbeat failed; no more heartbeats", exc_info=True)
            self.on = False


# ---- server-sent events ------------------------------------------------------------------


class _SSEDecoder:
    """Bytes -> ``(event, parsed JSON data)``; ``data: [DONE]`` gives ``(event, None)``."""

    def __init__(self) -> None:
        self._buffer = b""
        self._total = 0
        self._event: str | None = None
        self._data: list[bytes] = []
        self._size = 0

    def feed(self, chunk: bytes) -> Iterator[tuple[str | None, Any]]:
        # Yielded one by one: the events before a garbled one in the same chunk (a
        # transport may hand over all it buffered at once) still count, their usage too.
        self._total += len(chunk)
        if self._total > MAX_STREAM_BYTES:
            raise _Garbled(f"a stream over {MAX_STREAM_BYTES:,} bytes")
        lines = (self._buffer + chunk).split(b"\n")
        self._buffer = lines.pop()  # the unfinished last line (b"" after a newline)
        for line in lines:
            dispatched = self._line(line.rstrip(b"\r"))
            if dispatched is not None:
                yield dispatched
        if len(self._buffer) + self._size > MAX_EVENT_BYTES:
            raise _Garbled(f"an event over {MAX_EVENT_BYTES:,} bytes")

    def _line(self, line: bytes) -> tuple[str | None, Any] | None:
        if not line:
            if not self._data:
                self._event = None
                return None
            raw = b"\n".join(self._data)
            event, self._event, self._data, self._size = self._event, None, [], 0
            if raw.strip() == b"[DONE]":
                return event, None
            try:
                data = json.loads(raw)
            except ValueError as exc:
                raise _Garbled(f"event {event or 'message'!r} is not JSON: {exc}") from None
            if not isinstance(data, dict):
                raise _Garbled(f"event {event or 'message'!r} is a JSON {type(data).__name__}")
            return event, data
        if line.startswith(b":"):
            return None  # a comment (keep-alive)
        name, _, value = line.partition(b":")
        if value.startswith(b" "):
            value = value[1:]
        if name == b"event":
            self._event = value.decode("utf-8", "replace")
        elif name == b"data":
            self._data.append(value)
            self._size += len(value)
            if self._size > MAX_EVENT_BYTES:
                raise _Garbled(f"an event over {MAX_EVENT_BYTES:,} bytes")
        return None


# ---- accumulators: events -> the reply a non-streamed call returns ------------------------


class _Accumulator:
    def __init__(self) -> None:
        self.events = 0
        self.done = False
        self.output_started = False

    def feed(self, event: str | None, data: Any) -> None:
        # Counted once read well: an error as the first event is a request that failed,
        # not one the provider began answering (and billing).
        self._feed(event, data)
        self.events += 1

    def _feed(self, event: str | None, data: Any) -> None:
        raise NotImplementedError

    def final(self) -> dict[str, Any]:
        raise NotImplementedError

    def partial(self) -> dict[str, Any] | None:
        raise NotImplementedError


def _accumulator(api: str) -> _Accumulator:
    if api == "messages":
        return _AnthropicAccumulator()
    if api == "responses":
        return _ResponsesAccumulator()
    return _ChatAccumulator()


def _obj(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Garbled(f"{what} is a {type(value).__name__}, not an object")
    return value


def _index(value: Any, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 10_000:
        raise _Garbled(f"{what} has index {value!r}")
    return value


_RETRYABLE_KINDS = ("overloaded", "api_error", "rate_limit", "server_error", "timeout")


def _error_event(error: Any) -> _ProviderError:
    error = error if isinstance(error, Mapping) else {}
    # Responses error events say what went wrong in "code" ("type" is the event's kind).
    code = error.get("code")
    kind = str(code if isinstance(code, str) and code else error.get("type") or "error")
    message = str(error.get("message") or "no message")[:1000]
    return _ProviderError(message, kind, any(k in kind for k in _RETRYABLE_KINDS))


class _AnthropicAccumulator(_Accumulator):
    """message_start, content_block_start/delta/stop, message_delta, message_stop."""

    def __init__(self) -> None:
        super().__init__()
        self.message: dict[str, Any] | None = None
        self.blocks: dict[int, dict[str, Any]] = {}
        self.json_parts: dict[int, list[str]] = {}

    def _feed(self, event: str | None, data: Any) -> None:
        kind = data.get("type") if isinstance(data, dict) else event
        if kind == "error":
            raise _error_event(data.get("error"))
        if kind == "message_start":
            self.message = dict(_obj(data.get("message"), "message_start.message"))
            self.message["usage"] = dict(_obj(self.message.get("usage") or {}, "usage"))
            # Anthropic streams thinking as it goes and pings while quiet: from here on a
            # silence is a stall.
            self.output_started = True
            return
        if kind in ("ping", None) or self.message is None:
            if kind not in ("ping", None):
                raise _Garbled(f"{kind!r} before message_start")
            return
        if kind == "content_block_start":
            i = _index(data.get("index"), "content_block_start")
            self.blocks[i] = dict(_obj(data.get("content_block"), "content_block"))
            self.output_started = True
        elif kind == "content_block_delta":
            i = _index(data.get("index"), "content_block_delta")
            block = self.blocks.setdefault(i, {"type": "text", "text": ""})
            delta = _obj(data.get("delta"), "delta")
            self._apply(i, block, delta)
            self.output_started = True
        elif kind == "content_block_stop":
            i = _index(data.get("index"), "content_block_stop")
            parts = self.json_parts.pop(i, None)
            if parts is not None and i in self.blocks:
                text = "".join(parts)
                try:
                    self.blocks[i]["input"] = json.loads(text) if text else {}
                except ValueError as exc:
                    raise _Garbled(f"tool input of block {i} is not JSON: {exc}") from None
        elif kind == "message_delta":
            delta = data.get("delta")
            if isinstance(delta, dict):
                self.message.update({k: v for k, v in delta.items()})
            usage = data.get("usage")
            if isinstance(usage, dict):
                # Cumulative counts; fields left out (or null) keep message_start's.
                self.message["usage"].update({k: v for k, v in usage.items() if v is not None})
        elif kind == "message_stop":
            self.done = True

    def _apply(self, i: int, block: dict[str, Any], delta: dict[str, Any]) -> None:
        kind = delta.get("type")
        if kind == "text_delta":
            block["text"] = str(block.get("text") or "") + _text(delta.get("text"))
        elif kind == "thinking_delta":
            block["thinking"] = str(block.get("thinking") or "") + _text(delta.get("thinking"))
        elif kind == "signature_delta":
            block["signature"] = delta.get("signature")
        elif kind == "input_json_delta":
            self.json_parts.setdefault(i, []).append(_text(delta.get("partial_json")))
        elif kind == "citations_delta":
            block.setdefault("citations", []).append(delta.get("citation"))

    def final(self) -> dict[str, Any]:
        assert self.message is not None
        return {**self.message, "content": [self.blocks[i] for i in sorted(self.blocks)]}

    def partial(self) -> dict[str, Any] | None:
        if self.message is None:
            return None
        return {"model": self.message.get("model"), "usage": self.message.get("usage")}


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise _Garbled(f"a delta's text is a {type(value).__name__}, not a string")
    return value


class _ChatAccumulator(_Accumulator):
    """chat.completion.chunk events, the usage chunk (``choices: []``), ``[DONE]``."""

    def __init__(self) -> None:
        super().__init__()
        self.head: dict[str, Any] = {}
        self.choices: dict[int, dict[str, Any]] = {}
        self.usage: dict[str, Any] | None = None

    def _feed(self, event: str | None, data: Any) -> None:
        if data is None:  # [DONE]
            self.done = True
            return
        if "error" in data:
            raise _error_event(data.get("error"))
        if not self.head:
            self.head = {k: data.get(k) for k in ("id", "created", "model", "system_fingerprint")}
        if data.get("service_tier") is not None:
            self.head["service_tier"] = data["service_tier"]
        if isinstance(data.get("usage"), dict):
            self.usage = data["usage"]
        for choice in data.get("choices") or ():
            choice = _obj(choice, "choice")
            i = _index(choice.get("index", 0), "choice")
            acc = self.choices.setdefault(
                i, {"index": i, "message": {"role": "assistant", "content": None}}
            )
            delta = choice.get("delta")
            if isinstance(delta, dict):
                self._apply(acc["message"], delta)
            if choice.get("finish_reason") is not None:
                acc["finish_reason"] = choice["finish_reason"]

    def _apply(self, message: dict[str, Any], delta: dict[str, Any]) -> None:
        if delta.get("role"):
            message["role"] = delta["role"]
        for key in ("content", "refusal"):
            if delta.get(key) is not None:
                message[key] = (message.get(key) or "") + _text(delta[key])
                # The first chunk (role, content "") may come before a reasoning model's
                # silent thinking: only text counts as output flowing.
                self.output_started = self.output_started or bool(delta[key])
        for call in delta.get("tool_calls") or ():
            call = _obj(call, "tool_call")
            calls = message.setdefault("tool_calls", [])
            i = _index(call.get("index", 0), "tool_call")
            while len(calls) <= i:
                empty = {"name": "", "arguments": ""}
                calls.append({"id": None, "type": "function", "function": empty})
            target = calls[i]
            if call.get("id"):
                target["id"] = call["id"]
            function = call.get("function")
            if isinstance(function, dict):
                if function.get("name"):
                    target["function"]["name"] += _text(function["name"])
                if function.get("arguments"):
                    target["function"]["arguments"] += _text(function["arguments"])
            self.output_started = True

    def final(self) -> dict[str, Any]:
        choices = [
            {"finish_reason": None, "logprobs": None, **self.choices[i]}
            for i in sorted(self.choices)
        ]
        reply = {**self.head, "object": "chat.completion", "choices": choices}
        if self.usage is not None:
            reply["usage"] = self.usage
        return reply

    def partial(self) -> dict[str, Any] | None:
        if self.usage is None:
            return None
        return {"model": self.head.get("model"), "usage": self.usage}


class _ResponsesAccumulator(_Accumulator):
    """response.* events: the final response.completed / .incomplete holds the reply."""

    def __init__(self) -> None:
        super().__init__()
        self.response: dict[str, Any] | None = None

    def _feed(self, event: str | None, data: Any) -> None:
        kind = data.get("type") if isinstance(data, dict) else event
        if kind == "error":
            raise _error_event(data)
        if kind in ("response.created", "response.in_progress", "response.queued"):
            self.response = dict(_obj(data.get("response"), f"{kind}.response"))
        elif kind in ("response.completed", "response.incomplete"):
            self.response = dict(_obj(data.get("response"), f"{kind}.response"))
            self.done = True
        elif kind == "response.failed":
            self.response = dict(_obj(data.get("response"), f"{kind}.response"))
            raise _error_event(self.response.get("error"))
        elif isinstance(kind, str) and kind.endswith(".delta"):
            self.output_started = True

    def final(self) -> dict[str, Any]:
        assert self.response is not None
        return self.response

    def partial(self) -> dict[str, Any] | None:
        if self.response is None or not isinstance(self.response.get("usage"), dict):
            return None
        return {"model": self.response.get("model"), "usage": self.response["usage"]}
