"""A local HTTP stand-in for the Anthropic and OpenAI APIs, for tests and demos.

It is a real server on 127.0.0.1 (ephemeral port) that the official SDKs talk to through
their ``base_url``: Anthropic ``POST /v1/messages`` and OpenAI
``POST /v1/chat/completions`` (any path prefix works, so base URLs with or without
``/v1`` do). It answers deterministically, with usage blocks shaped like the real ones
(cache reads and writes, reasoning tokens), can be scripted to fail in every way a
provider fails, and counts what it "billed".

It runs on its own event loop in a daemon thread, so the same object works from async
tests, from sync programs, and under load without competing with the caller's loop::

    with StandIn() as standin:                      # or: async with StandIn() as standin:
        standin.script("gpt-4o", [Fault.status(429, retry_after=2), Fault.ok()])
        os.environ.update(standin.env())            # or: complete(..., config=standin.config())
        ...
        assert standin.billed_calls("gpt-4o") == 1

Default answers are an "assessment" JSON string, ``{"score": N, "label": "..."}``, with N
in 1..10 a stable hash of model and prompt, and the label following the score (1-3 poor,
4-6 fair, 7-8 good, 9-10 excellent). A prompt whose last user message already quotes
verdicts (``6 (fair)``, ``score **6** (fair``) is answered in agreement with them: their
median and its label (:func:`verdict_summary`), as a reviewer summing up would. Pass
``responder=`` to answer otherwise.

Billing follows the providers: a request is billed when the provider has received it
whole and accepted it for an answer (key present, valid body, no scripted error status
or reset): ``Fault.ok``, ``Fault.slow``, ``Fault.reply`` and ``Fault.malformed``. A
client that hangs up afterwards (its timeout fired, its worker was cancelled or killed)
does not undo it: a non-streamed answer is generated to its end and billed, and the
recorded request keeps ``billed=True`` with the usage it was billed for, its outcome
``client_gone``. Error statuses and resets are not billed, and neither is a request that
never arrived whole. ``billed_calls()`` is what an invoice would list.

Token counts are derived from text lengths (about 4 characters a token). A system
prompt is treated as a cacheable prefix: the first billed call with a given
(provider, model, system prompt) writes it to the emulated cache, later ones read it,
which exercises the cache fields of both usage shapes. OpenAI reasoning models (``o1``,
``o3``, ``o4``..., ``gpt-5``) report reasoning tokens as part of the completion tokens.

Run it on its own for a demo: ``python -m baton_temporal.testing.standin --port 8089``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import hashlib
import json
import math
import re
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from ._batch_standin import BatchAPI
from ._streams import (
    StreamPlan,
    encode_event,
    error_event,
    responses_input_messages,
    responses_reply,
    sse_events,
)
from ._structured import instance, schema_problem, seed_from, structured_request

if TYPE_CHECKING:
    from baton_temporal.llm import LLMConfig

__all__ = [
    "Fault",
    "RecordedRequest",
    "StandIn",
    "StreamPlan",
    "assessment_text",
    "count_tokens",
    "default_answer",
    "verdict_summary",
]

FaultKind = Literal["ok", "status", "malformed", "reset", "reply"]
Responder = Callable[[str, Sequence[Mapping[str, Any]]], str]

# Answers that are fine for tests; the labels follow the score.
_LABELS = {1: "poor", 2: "poor", 3: "poor", 4: "fair", 5: "fair", 6: "fair"}
_LABELS.update({7: "good", 8: "good", 9: "excellent", 10: "excellent"})
_REASONING_MODEL = re.compile(r"^(o\d|gpt-5)")
_PROVIDER_PREFIXES = ("anthropic:", "openai-compatible:", "openai:")
_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    409: "Conflict",
    413: "Payload Too Large",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
    529: "Overloaded",
}
# (error type, message) as Anthropic words them. {model} is filled in.
_ANTHROPIC_ERRORS = {
    400: ("invalid_request_error", "messages: Input should be a valid list"),
    401: ("authentication_error", "invalid x-api-key"),
    403: ("permission_error", "Your API key does not have permission to use this resource."),
    404: ("not_found_error", "model: {model}"),
    408: ("timeout_error", "Request timed out."),
    409: ("api_error", "Conflict; please retry."),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    422: ("invalid_request_error", "Unprocessable request."),
    429: ("rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit."),
    500: ("api_error", "Internal server error"),
    529: ("overloaded_error", "Overloaded"),
}
# (error type, code, message) as OpenAI words them.
_OPENAI_ERRORS = {
    400: ("invalid_request_error", None, "Invalid value for 'messages'."),
    401: (
        "invalid_request_error",
        "invalid_api_key",
        "Incorrect API key provided: {masked_key}. You can find your API key at "
        "https://platform.openai.com/account/api-keys.",
    ),
    403: ("invalid_request_error", "unsupported_country_region_territory", "Forbidden."),
    404: (
        "invalid_request_error",
        "model_not_found",
        "The model `{model}` does not exist or you do not have access to it.",
    ),
    409: ("invalid_request_error", None, "Conflict; please retry."),
    422: ("invalid_request_error", None, "Unprocessable request."),
    429: (
        "requests",
        "rate_limit_exceeded",
        "Rate limit reached for {model} on requests per min (RPM): Limit 3, Used 3.",
    ),
    500: (
        "server_error",
        None,
        "The server had an error while processing your request. Sorry about that!",
    ),
    503: ("server_error", None, "The engine is currently overloaded, please try again later."),
}


@dataclass(frozen=True)
class Fault:
    """One scripted reply. Build with the class methods; each is consumed by one request.

    Example::

        standin.script("claude-sonnet-4-20250514", [
            Fault.status(429, retry_after=2),     # then
            Fault.status(500),                    # then
            Fault.ok(),
        ])
    """

    kind: FaultKind = "ok"
    status_code: int = 200
    message: str | None = None
    error_type: str | None = None
    retry_after: float | str | None = None
    retry_after_ms: float | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0
    text: str | None = None
    body: Mapping[str, Any] | None = None
    stream_plan: StreamPlan | None = None

    @classmethod
    def stream(
        cls,
        text: str | None = None,
        *,
        chunk_delay: float = 0.0,
        stall_after: int | None = None,
        stall_for: float | None = None,
        cut_after: int | None = None,
        reset: bool = False,
        garble_at: int | None = None,
        drop_usage: bool = False,
        error_at: int | None = None,
        error_type: str = "overloaded_error",
        chunk_chars: int = 16,
        keepalive_every: float | None = None,
    ) -> Fault:
        """A normal answer that, to a streamed request, streams as :class:`StreamPlan`
        says: ``chunk_delay`` s before each event, a stall after ``stall_after`` events
        (``stall_for`` s, or until the client hangs up), a cut after ``cut_after`` events,
        a garbled event, an error event, or no usage in the final event; ``keepalive_every``
        sends an SSE comment that often during the stall. A request that does not stream
        gets the whole answer.

        Example::

            standin.script("claude-sonnet-4-20250514", [Fault.stream(cut_after=5), Fault.ok()])
        """
        plan = StreamPlan(
            chunk_delay=chunk_delay,
            stall_after=stall_after,
            stall_for=stall_for,
            cut_after=cut_after,
            reset=reset,
            garble_at=garble_at,
            drop_usage=drop_usage,
            error_at=error_at,
            error_type=error_type,
            chunk_chars=chunk_chars,
            keepalive_every=keepalive_every,
        )
        return cls(kind="ok", text=text, stream_plan=plan)

    # For structured-output requests: "invalid" answers ``output`` (schema or not),
    # "prose" answers ``text`` as plain text instead of JSON or a tool call.
    shape: Literal["auto", "invalid", "prose"] = "auto"
    output: Any = None

    @classmethod
    def invalid_output(cls, output: Any = None, *, delay: float = 0.0) -> Fault:
        """A billed 200 whose structured output is ``output`` (default ``{}``), whatever
        the request's schema says: JSON text for a JSON-schema request, the arguments
        of the forced tool call otherwise. Script it N times to fail N validations."""
        return cls(kind="ok", shape="invalid", output={} if output is None else output, delay=delay)

    @classmethod
    def prose(
        cls, text: str = "I think the document is quite good.", *, delay: float = 0.0
    ) -> Fault:
        """A billed 200 with plain text: no JSON, no tool call (a model that ignored the
        requested format)."""
        return cls(kind="ok", shape="prose", text=text, delay=delay)

    @classmethod
    def reply(cls, body: Mapping[str, Any], *, delay: float = 0.0) -> Fault:
        """A 200 whose JSON body is ``body`` as given (e.g. an SDK object's
        ``model_dump(mode="json")``), billed with the usage it reports.

        For replies the stand-in does not make itself: 1-hour cache writes, web searches,
        audio, service tiers, a billed body whose content is broken.
        """
        return cls(kind="reply", body=dict(body), delay=delay)

    @classmethod
    def ok(cls, text: str | None = None, *, delay: float = 0.0) -> Fault:
        """A normal 200 answer (``text`` instead of the default one), after ``delay`` s."""
        return cls(kind="ok", text=text, delay=delay)

    @classmethod
    def slow(cls, seconds: float, text: str | None = None) -> Fault:
        """A normal answer that takes ``seconds`` (on top of the configured latency).

        Billed even if the client gives up first (a provider generates and bills a
        non-streamed answer it accepted); the request's outcome is then ``client_gone``.
        """
        return cls(kind="ok", text=text, delay=seconds)

    @classmethod
    def status(
        cls,
        status_code: int,
        message: str | None = None,
        *,
        error_type: str | None = None,
        retry_after: float | str | None = None,
        retry_after_ms: float | None = None,
        headers: Mapping[str, str] | None = None,
        delay: float = 0.0,
    ) -> Fault:
        """An error reply with the provider's own body shape for ``status_code``.

        ``message`` replaces the provider-worded default; ``{model}`` in it is filled in,
        and ``{api_key}`` is replaced by the key the client sent (to test that callers
        scrub keys that a provider echoes back). ``retry_after`` (seconds, or an HTTP
        date string) and ``retry_after_ms`` set those headers.
        """
        if not 400 <= status_code <= 599:
            raise ValueError(f"Fault.status needs a 4xx or 5xx code, got {status_code}")
        return cls(
            kind="status",
            status_code=status_code,
            message=message,
            error_type=error_type,
            retry_after=retry_after,
            retry_after_ms=retry_after_ms,
            headers=dict(headers or {}),
            delay=delay,
        )

    @classmethod
    def rate_limited(cls, retry_after: float | None = 1.0) -> Fault:
        """Shorthand for ``Fault.status(429, retry_after=...)``."""
        return cls.status(429, retry_after=retry_after)

    @classmethod
    def malformed(cls, *, delay: float = 0.0) -> Fault:
        """A 200 whose JSON body is cut off halfway: generated and billed, broken in
        transit."""
        return cls(kind="malformed", delay=delay)

    @classmethod
    def reset(cls, *, delay: float = 0.0) -> Fault:
        """Close the connection (TCP reset) without any reply. Not billed."""
        return cls(kind="reset", delay=delay)


@dataclass(frozen=True)
class RecordedRequest:
    """What the stand-in received and how it answered. Keys are never stored: only
    whether one was sent, and a short fingerprint to tell keys apart."""

    index: int
    time: float
    method: str
    path: str
    provider: Literal["anthropic", "openai"] | None
    model: str | None
    api_key_present: bool
    api_key_fingerprint: str | None
    body: Any
    # "pending" until answered; "client_gone" when the client hung up while it waited
    # (billed all the same if the request had been accepted: see the module docs; mid-
    # stream, billed too); "stream_cut" when a scripted cut ended a stream.
    outcome: Literal[
        "pending", "ok", "status", "malformed", "reset", "client_gone", "invalid", "stream_cut"
    ]
    status_code: int | None
    billed: bool
    usage: dict[str, Any] | None
    text: str | None


def count_tokens(text: str) -> int:
    """The stand-in's token count: about four characters a token, at least one."""
    return max(1, math.ceil(len(text) / 4))


def assessment_text(model: str, prompt: str) -> str:
    """The default answer: ``{"score": N, "label": "..."}``, N a stable hash in 1..10."""
    digest = hashlib.sha256(f"{model}\n{prompt}".encode()).digest()
    score = int.from_bytes(digest[:4], "big") % 10 + 1
    return json.dumps({"score": score, "label": _LABELS[score]})


# A verdict quoted in a prompt: "6 (fair", "score **6** (fair", "- gpt-4o: 9 (excellent)".
_QUOTED_VERDICT = re.compile(r"\b(10|[1-9])\b\**\s*\((poor|fair|good|excellent)\b")


def quoted_verdicts(text: str) -> list[int]:
    """The scores of the verdicts ``text`` quotes (``N (label)``), in order."""
    return [int(m.group(1)) for m in _QUOTED_VERDICT.finditer(text)]


def verdict_summary(scores: Sequence[int]) -> str:
    """What the stand-in answers when asked about verdicts it is shown: their median
    (the lower one of an even count, so it is a score someone gave) and its label.

    Example::

        verdict_summary([9, 5, 6])
        # "Verdict: 6/10 (fair), in line with the scores given (5, 6, 9)."
    """
    ordered = sorted(scores)
    median = ordered[(len(ordered) - 1) // 2]
    given = ", ".join(str(s) for s in ordered)
    return f"Verdict: {median}/10 ({_LABELS[median]}), in line with the scores given ({given})."


def default_answer(model: str, prompt: str, last_user: str, *, wants_json: bool = False) -> str:
    """The answer when no responder is set: a reviewer's summary agreeing with the
    verdicts the last user message quotes, if it quotes any; else an assessment of the
    prompt (:func:`assessment_text`). So a synthesis or report written from the
    stand-in's own scores never contradicts them. A prompt that asks for JSON, or a request
    for structured output (``wants_json``), gets JSON either way (a document being rated
    may itself quote a verdict)."""
    scores = quoted_verdicts(last_user)
    if not scores:
        return assessment_text(model, prompt)
    if wants_json or "json" in prompt.lower():
        median = sorted(scores)[(len(scores) - 1) // 2]
        return json.dumps({"score": median, "label": _LABELS[median]})
    return verdict_summary(scores)


def _last_user_text(parts: Sequence[tuple[str, str]]) -> str:
    return next((content for role, content in reversed(parts) if role == "user"), "")


class StandIn:
    """The provider stand-in server. See the module docs for a tour.

    Args:
        latency: seconds every successful answer takes (model "thinking" time).
        latency_by_model: per-model latency, overriding ``latency``.
        responder: ``(model, messages) -> text`` for answers other than the assessment.
        batch_delay: seconds until a batch of the batch APIs ends (``standin.batch`` holds
            that API's knobs; see testing/_batch_standin.py).
        prompt_cache: emulate prompt caching of system prompts (default on).
        require_api_key: answer 401 to requests that carry no key, as providers do.
        port: 0 (default) picks a free port.
    """

    ANTHROPIC_API_KEY = "sk-ant-standin-not-a-real-key"
    OPENAI_API_KEY = "sk-standin-not-a-real-key"

    def __init__(
        self,
        *,
        latency: float = 0.0,
        latency_by_model: Mapping[str, float] | None = None,
        responder: Responder | None = None,
        prompt_cache: bool = True,
        require_api_key: bool = True,
        host: str = "127.0.0.1",
        port: int = 0,
        batch_delay: float = 1.0,
    ) -> None:
        self._latency = self._initial_latency = latency
        self._initial_latency_by_model = dict(latency_by_model or {})
        self._latency_by_model = dict(self._initial_latency_by_model)
        self._responder = responder
        self._prompt_cache = prompt_cache
        self._require_api_key = require_api_key
        self._host = host
        self._port = port
        # Shared between the server thread and callers: everything below is under _lock.
        self._lock = threading.Lock()
        self._scripts: dict[str | None, deque[Fault]] = {}
        self._requests: list[RecordedRequest] = []
        self._cache_seen: set[tuple[str, str, str]] = set()
        self._generation = 0  # bumped by reset(), to drop answers to older requests
        # Server thread state.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.base_events.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        # The batch APIs (Anthropic Message Batches, OpenAI Batch + files); its knobs.
        self.batch = BatchAPI(self, delay=batch_delay)
        self._connections_opened = 0

    # ---- lifecycle -------------------------------------------------------------------

    def start(self) -> StandIn:
        """Start serving (idempotent). Returns self."""
        if self._thread is not None:
            return self
        ready = threading.Event()
        failure: list[BaseException] = []
        loop = asyncio.new_event_loop()

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                self._server = loop.run_until_complete(
                    asyncio.start_server(self._handle, self._host, self._port, limit=1 << 20)
                )
                self._port = self._server.sockets[0].getsockname()[1]
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.close()

        self._loop = loop
        self._thread = threading.Thread(target=run, name="baton-standin", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            self._thread.join()
            self._thread = self._loop = None
            raise failure[0]
        return self

    def stop(self) -> None:
        """Stop serving and drop open connections (idempotent)."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        self._thread = self._loop = self._server = None

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.gather(*self._connections, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    def __enter__(self) -> StandIn:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    async def __aenter__(self) -> StandIn:
        return await asyncio.to_thread(self.start)

    async def __aexit__(self, *exc_info: object) -> None:
        await asyncio.to_thread(self.stop)

    def __repr__(self) -> str:
        where = self.url if self._thread is not None else "stopped"
        return f"StandIn({where}, {len(self._requests)} requests)"

    # ---- where it is -----------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._thread is None:
            raise RuntimeError("the stand-in is not running; use `with StandIn() as s:`")
        return self._port

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``, the Anthropic base URL."""
        return f"http://{self._host}:{self.port}"

    @property
    def openai_base_url(self) -> str:
        """``http://127.0.0.1:<port>/v1``: the OpenAI SDK appends paths to its base URL."""
        return f"{self.url}/v1"

    def env(self) -> dict[str, str]:
        """Environment variables that point the SDKs (and ``LLMConfig.from_env``) here."""
        return {
            "ANTHROPIC_BASE_URL": self.url,
            "ANTHROPIC_API_KEY": self.ANTHROPIC_API_KEY,
            "OPENAI_BASE_URL": self.openai_base_url,
            "OPENAI_API_KEY": self.OPENAI_API_KEY,
            "BATON_OPENAI_COMPATIBLE_BASE_URL": self.openai_base_url,
        }

    def config(self, **overrides: Any) -> LLMConfig:
        """An ``LLMConfig`` for every provider pointed here; ``overrides`` replace fields."""
        from baton_temporal.llm import LLMConfig  # the SDK layer is not needed for env()

        values: dict[str, Any] = {
            "anthropic_api_key": self.ANTHROPIC_API_KEY,
            "anthropic_base_url": self.url,
            "openai_api_key": self.OPENAI_API_KEY,
            "openai_base_url": self.openai_base_url,
            "openai_compatible_base_url": self.openai_base_url,
        }
        values.update(overrides)
        return LLMConfig(**values)

    # ---- scripting -------------------------------------------------------------------

    def script(self, model: str | None, faults: Iterable[Fault]) -> None:
        """Queue replies for ``model`` (as sent on the wire; a ``provider:`` prefix is
        ignored), or for any model when ``model`` is None. Per-model queues are used
        before the global one; when both are empty the answer is a normal 200."""
        key = _wire_model(model)
        faults = list(faults)
        for fault in faults:
            if not isinstance(fault, Fault):
                raise TypeError(f"script() takes Fault objects, got {type(fault).__name__}")
        with self._lock:
            self._scripts.setdefault(key, deque()).extend(faults)

    def pending_faults(self, model: str | None = None) -> int:
        """How many scripted replies for ``model`` (None: the global queue) are unused."""
        with self._lock:
            return len(self._scripts.get(_wire_model(model), ()))

    def set_latency(self, seconds: float, model: str | None = None) -> None:
        """Set the latency of successful answers, for one model or as the default."""
        with self._lock:
            if model is None:
                self._latency = seconds
            else:
                self._latency_by_model[_wire_model(model) or ""] = seconds

    def reset(self) -> None:
        """Forget recorded requests, scripted faults and the emulated prompt cache, and
        restore the latencies given to the constructor."""
        with self._lock:
            self._latency = self._initial_latency
            self._latency_by_model = dict(self._initial_latency_by_model)
            self._scripts.clear()
            self._requests.clear()
            self._generation += 1
            self._cache_seen.clear()
        self.batch.reset()

    # ---- what happened ---------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, oldest first (a copy)."""
        with self._lock:
            return list(self._requests)

    def billed_requests(self, model: str | None = None) -> list[RecordedRequest]:
        """The requests billed (accepted for an answer, even if the client then hung up),
        optionally for one model."""
        key = _wire_model(model)
        return [r for r in self.requests if r.billed and (key is None or r.model == key)]

    @property
    def connections_opened(self) -> int:
        """TCP connections accepted since start (not cleared by reset()): how many
        connections the clients opened, to check that they reuse them."""
        with self._lock:
            return self._connections_opened

    def billed_calls(self, model: str | None = None) -> int:
        """How many calls the stand-in billed: accepted for an answer (see the module
        docs), whether or not the client stayed for it."""
        return len(self.billed_requests(model))

    # ---- the server ------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        with self._lock:
            self._connections_opened += 1
        try:
            while True:
                request = await _read_request(reader)
                if request is None:
                    break
                if not await self._serve(request, reader, writer):
                    break
        except (ConnectionError, asyncio.IncompleteReadError, ValueError, asyncio.CancelledError):
            pass
        finally:
            self._connections.discard(task)
            writer.close()

    async def _serve(
        self, request: _Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        """Answer one request; False when the connection must close afterwards."""
        path = urlsplit(request.target).path.rstrip("/")
        provider: Literal["anthropic", "openai"] | None = None
        api = "chat"
        if path.endswith("/messages"):
            provider, api = "anthropic", "messages"
        elif path.endswith("/chat/completions"):
            provider = "openai"
        elif path.endswith("/responses"):
            provider, api = "openai", "responses"
        key = _api_key(request.headers)
        fingerprint = hashlib.sha256(key.encode()).hexdigest()[:12] if key else None

        # One entry per request, made when it arrives and completed when it is answered,
        # so a request still in flight when a test calls reset() does not leak into the
        # next test's records.
        generation = self._generation
        slot: list[int] = []

        def record(**kw: Any) -> None:
            with self._lock:
                if self._generation != generation:
                    return
                if slot:
                    self._requests[slot[0]] = dataclasses.replace(self._requests[slot[0]], **kw)
                    return
                slot.append(len(self._requests))
                self._requests.append(
                    RecordedRequest(
                        index=slot[0],
                        time=time.time(),
                        method=request.method,
                        path=path,
                        provider=provider,
                        api_key_present=key is not None,
                        api_key_fingerprint=fingerprint,
                        **{"model": None, "body": None, "usage": None, "text": None, **kw},
                    )
                )

        if request.method == "GET" and path in ("", "/health"):
            await _write(writer, 200, {"ok": True})
            return True
        if BatchAPI.handles(path):
            await self.batch.serve(
                request.method,
                request.target,
                request.headers,
                request.body,
                lambda status, body, headers=None: _write(writer, status, body, headers),
                lambda status, body, headers=None: _write_raw(writer, status, body, headers),
            )
            return True
        if provider is None or request.method != "POST":
            status = 404 if provider is None else 405
            record(outcome="invalid", status_code=status, billed=False)
            body = _error_body(
                "openai", status, f"Unknown request URL: {request.method} {path}", None, None
            )
            await _write(writer, status, body)
            return True
        try:
            payload = json.loads(request.body or b"null")
        except ValueError:
            payload = None
        model = payload.get("model") if isinstance(payload, dict) else None
        if not isinstance(payload, dict) or not isinstance(model, str) or not model:
            record(outcome="invalid", status_code=400, billed=False, body=payload)
            reason = "the body must be a JSON object with a 'model' string"
            await _write(writer, 400, _error_body(provider, 400, reason, None, None))
            return True
        if key is None and self._require_api_key:
            # Providers check the key before anything else, so no scripted fault is used.
            record(outcome="status", status_code=401, billed=False, body=payload, model=model)
            await _write(writer, 401, _error_body(provider, 401, None, None, model))
            return True
        streaming = payload.get("stream") is True
        schema_error = schema_problem(provider, payload)
        if schema_error is not None:
            record(outcome="invalid", status_code=400, billed=False, body=payload, model=model)
            await _write(writer, 400, _error_body(provider, 400, schema_error, None, model))
            return True

        fault, latency = self._next_fault(model)
        # Billing (see the module docs): a request the provider accepts for an answer is
        # billed when it is received, whatever happens to the connection afterwards.
        billed = fault.kind in ("ok", "reply", "malformed")
        reply: dict[str, Any] | None = None
        usage: dict[str, Any] | None = None
        text: str | None = None
        if fault.kind == "reply" and fault.body is not None:
            reply = dict(fault.body)
            body_usage = reply.get("usage")
            usage, text = (body_usage if isinstance(body_usage, dict) else None), ""
        elif billed:
            try:
                reply, usage, text = self._answer(
                    provider, model, payload, fault, commit=True, api=api
                )
            except Exception as exc:  # a broken responder shows up as a 500 that says why
                failed = f"stand-in responder failed: {type(exc).__name__}: {exc}"
                record(outcome="status", status_code=500, billed=False, body=payload, model=model)
                await _write(writer, 500, _error_body(provider, 500, failed, None, model))
                return True
        record(
            outcome="pending",
            status_code=None,
            billed=billed,
            body=payload,
            model=model,
            usage=usage,
            text=text,
        )
        wait = fault.delay + (latency if fault.kind == "ok" else 0.0)
        if await _client_leaves_within(reader, wait):
            # The client hung up (its timeout, a cancelled or killed worker). A provider
            # still generates and bills a non-streamed answer it accepted: billed stays.
            record(outcome="client_gone")
            return False

        if fault.kind == "reset":
            record(outcome="reset", status_code=None, billed=False, body=payload, model=model)
            _abort_with_reset(writer)
            return False
        if fault.kind == "status":
            message: str | None = fault.message
            if message is not None:
                message = message.replace("{model}", model).replace("{api_key}", key or "")
            body = _error_body(provider, fault.status_code, message, fault.error_type, model, key)
            headers = dict(fault.headers)
            if fault.retry_after is not None:
                headers["retry-after"] = _header_number(fault.retry_after)
            if fault.retry_after_ms is not None:
                headers["retry-after-ms"] = _header_number(fault.retry_after_ms)
            record(
                outcome="status",
                status_code=fault.status_code,
                billed=False,
                body=payload,
                model=model,
            )
            await _write(writer, fault.status_code, body, headers)
            return True
        assert reply is not None and text is not None
        if fault.kind == "malformed":
            # Generated and billed; the body breaks off in transit.
            record(outcome="malformed", status_code=200)
            raw = json.dumps(reply).encode()
            await _write_raw(writer, 200, raw[: len(raw) // 2])
            return True
        if streaming and fault.kind != "reply":  # a scripted body is sent as it is
            options = payload.get("stream_options")
            include_usage = api != "chat" or (
                isinstance(options, dict) and options.get("include_usage") is True
            )
            plan = fault.stream_plan or StreamPlan()
            return await _write_stream(
                reader, writer, api, reply, plan, include_usage, record, payload, model, text
            )
        # Recorded before the reply is written, so a caller that has its answer always
        # finds it counted.
        record(outcome="ok", status_code=200)
        await _write(writer, 200, reply)
        return True

    def _next_fault(self, model: str) -> tuple[Fault, float]:
        with self._lock:
            for key in (model, None):
                queue = self._scripts.get(key)
                if queue:
                    fault = queue.popleft()
                    break
            else:
                fault = Fault.ok()
            return fault, self._latency_by_model.get(model, self._latency)

    def _answer(
        self,
        provider: str,
        model: str,
        payload: dict[str, Any],
        fault: Fault,
        commit: bool,
        api: str = "chat",
    ) -> tuple[dict[str, Any], dict[str, Any], str]:
        """The 200 body, its usage block and the text, derived from the request."""
        text = fault.text
        raw_messages = (
            responses_input_messages(payload) if api == "responses" else payload.get("messages")
        )
        messages: list[Any] = raw_messages if isinstance(raw_messages, list) else []
        system = _content_text(payload.get("system")) if provider == "anthropic" else ""
        if provider == "openai":
            system = "\n".join(
                _content_text(m.get("content"))
                for m in messages
                if isinstance(m, dict) and m.get("role") in ("system", "developer")
            )
        parts = [("system", system)] if system and provider == "anthropic" else []
        parts += [
            (str(m.get("role")), _content_text(m.get("content")))
            for m in messages
            if isinstance(m, dict)
        ]
        prompt = "\n".join(f"{role}: {content}" for role, content in parts)
        # Structured output: JSON text for a schema, or a forced tool call's arguments.
        spec = structured_request(provider, payload) if fault.shape != "prose" else None
        if text is None:
            text = (
                self._responder(model, messages)
                if self._responder is not None
                else default_answer(
                    model, prompt, _last_user_text(parts), wants_json=spec is not None
                )
            )
        # 4 tokens of framing per message, as real chat formats have.
        prompt_tokens = sum(count_tokens(content) + 4 for _, content in parts)
        cached = 0
        first_sight = False
        if system and self._prompt_cache:
            cached = min(count_tokens(system), prompt_tokens)
            cache_key = (provider, model, system)
            with self._lock:
                # Only a billed answer fills the cache: a failed one computed nothing.
                first_sight = cache_key not in self._cache_seen
                if commit:
                    self._cache_seen.add(cache_key)

        tool_call: dict[str, Any] | None = None
        if spec is not None:
            if fault.shape == "invalid":
                output = fault.output
            else:
                output = instance(spec.schema, seed_from(text))
            text = output if isinstance(output, str) else json.dumps(output)
            if spec.kind == "tool":
                tool_call = {"name": spec.name, "input": output}
        limit = (
            payload.get("max_tokens")
            or payload.get("max_completion_tokens")
            or payload.get("max_output_tokens")
        )
        visible = count_tokens(text)
        stop = "end_turn" if provider == "anthropic" else "stop"
        if isinstance(limit, int) and limit > 0 and visible > limit:
            text, visible = text[: limit * 4], limit
            stop = "max_tokens" if provider == "anthropic" else "length"
        n = len(self._requests)

        if provider == "anthropic":
            write, read = (cached, 0) if first_sight else (0, cached)
            usage: dict[str, Any] = {
                "input_tokens": prompt_tokens - read - write,
                "cache_creation_input_tokens": write,
                "cache_read_input_tokens": read,
                "cache_creation": {
                    "ephemeral_5m_input_tokens": write,
                    "ephemeral_1h_input_tokens": 0,
                },
                "output_tokens": visible,
                "service_tier": "standard",
            }
            content: list[dict[str, Any]] = [{"type": "text", "text": text}]
            if tool_call is not None:
                tool_input = tool_call["input"]
                if not isinstance(tool_input, dict):
                    tool_input = {"value": tool_input}  # a tool's input is always an object
                content = [
                    {
                        "type": "tool_use",
                        "id": f"toolu_standin_{n:06d}",
                        "name": tool_call["name"],
                        "input": tool_input,
                    }
                ]
                stop = "tool_use" if stop == "end_turn" else stop
            reply: dict[str, Any] = {
                "id": f"msg_standin_{n:06d}",
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": content,
                "stop_reason": stop,
                "stop_sequence": None,
                "usage": usage,
            }
            return reply, usage, text

        reasoning = 0
        if _REASONING_MODEL.match(model):
            reasoning = 2 * visible + 16
            if isinstance(limit, int) and limit > 0:
                reasoning = min(reasoning, max(0, limit - visible))
        read = 0 if first_sight else cached
        if api == "responses":
            reply = responses_reply(
                n,
                model,
                text,
                prompt_tokens=prompt_tokens,
                cached=read,
                visible=visible,
                reasoning=reasoning,
                truncated=stop == "length",
                payload=payload,
                tool_call=tool_call,
            )
            return reply, reply["usage"], text
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": visible + reasoning,
            "total_tokens": prompt_tokens + visible + reasoning,
            "prompt_tokens_details": {"cached_tokens": read, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": reasoning,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }
        message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None}
        if tool_call is not None:
            message["content"] = None
            message["tool_calls"] = [
                {
                    "id": f"call_standin_{n:06d}",
                    "type": "function",
                    "function": {"name": tool_call["name"], "arguments": text},
                }
            ]
        reply = {
            "id": f"chatcmpl-standin-{n:06d}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": stop,
                }
            ],
            "usage": usage,
            "system_fingerprint": "fp_standin",
        }
        return reply, usage, text


# ---- HTTP/1.1, just enough for the SDKs' clients -----------------------------------------


@dataclass
class _Request:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes


async def _read_request(reader: asyncio.StreamReader) -> _Request | None:
    line = await reader.readline()
    if not line:
        return None
    method, target, _version = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
    headers: dict[str, str] = {}
    while True:
        raw = await reader.readline()
        if raw in (b"\r\n", b"\n", b""):
            break
        name, _, value = raw.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        chunks = []
        while True:
            size = int((await reader.readline()).split(b";")[0].strip() or b"0", 16)
            if size == 0:
                await reader.readline()
                break
            chunks.append(await reader.readexactly(size))
            await reader.readline()
        body = b"".join(chunks)
    else:
        length = int(headers.get("content-length", "0") or 0)
        body = await reader.readexactly(length) if length else b""
    return _Request(method.upper(), target, headers, body)


async def _write(
    writer: asyncio.StreamWriter,
    status: int,
    payload: Any,
    headers: Mapping[str, str] | None = None,
) -> None:
    await _write_raw(writer, status, json.dumps(payload).encode(), headers)


async def _write_raw(
    writer: asyncio.StreamWriter,
    status: int,
    body: bytes,
    headers: Mapping[str, str] | None = None,
) -> None:
    lines = [
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}",
        "content-type: application/json",
        f"content-length: {len(body)}",
        f"request-id: req_standin_{time.monotonic_ns():x}",
        "connection: keep-alive",
    ]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
    await writer.drain()


async def _write_stream(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    api: str,
    reply: dict[str, Any],
    plan: StreamPlan,
    include_usage: bool,
    record: Callable[..., None],
    payload: dict[str, Any],
    model: str,
    text: str,
) -> bool:
    """Stream ``reply`` as server-sent events, misbehaving as ``plan`` says. False when
    the connection must close afterwards."""
    head = [
        "HTTP/1.1 200 OK",
        "content-type: text/event-stream; charset=utf-8",
        "transfer-encoding: chunked",
        "cache-control: no-cache",
        f"request-id: req_standin_{time.monotonic_ns():x}",
        "connection: keep-alive",
    ]
    buffer = bytearray(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
    reported: dict[str, Any] | None = None  # the usage the events sent so far report

    def done(outcome: str, billed: bool = True) -> None:
        record(
            outcome=outcome,
            status_code=200,
            billed=billed,
            body=payload,
            model=model,
            usage=reported,
            text=text if outcome == "ok" else None,
        )

    async def flush() -> None:
        if buffer:
            writer.write(bytes(buffer))
            buffer.clear()
            await writer.drain()

    sent = 0
    try:
        for event, data in sse_events(api, reply, plan, include_usage):
            if plan.cut_after is not None and sent >= plan.cut_after:
                await flush()
                done("stream_cut", billed=sent > 0)
                if plan.reset:
                    _abort_with_reset(writer)
                else:
                    writer.close()  # an orderly close in mid-body: the chunked body is cut
                return False
            if plan.stall_after is not None and sent == plan.stall_after:
                await flush()
                wait = plan.stall_for if plan.stall_for is not None else 3600.0
                step = plan.keepalive_every or wait
                gone = False
                while wait > 0 and not gone:
                    gone = await _client_leaves_within(reader, min(step, wait))
                    wait -= step
                    if not gone and wait > 0 and plan.keepalive_every:
                        try:
                            writer.write(_chunk(b": keep-alive\n\n"))
                            await writer.drain()
                        except OSError:
                            gone = True
                if gone:
                    done("client_gone", billed=sent > 0)
                    return False
            if plan.error_at is not None and sent == plan.error_at:
                name, body = error_event(api, plan.error_type)
                buffer += _chunk(encode_event(name, body)) + b"0\r\n\r\n"
                done("stream_cut", billed=sent > 0)
                await flush()
                return True
            if plan.chunk_delay > 0:
                await flush()
                if await _client_leaves_within(reader, plan.chunk_delay):
                    done("client_gone", billed=sent > 0)
                    return False
            buffer += _chunk(encode_event(event, data, garble=sent == plan.garble_at))
            reported = _usage_so_far(api, data, reported)
            sent += 1
            if len(buffer) >= 64 * 1024:
                await flush()
        buffer += b"0\r\n\r\n"
        # Recorded before the last bytes go, so a caller that has its answer finds it counted.
        done("ok")
        await flush()
        return True
    except ConnectionError:
        done("client_gone", billed=sent > 0)
        return False


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def _usage_so_far(api: str, data: Any, reported: dict[str, Any] | None) -> dict[str, Any] | None:
    """The usage a client could know once ``data`` (one event) has arrived."""
    if not isinstance(data, dict):
        return reported
    if api == "messages":
        if data.get("type") == "message_start":
            return dict(data["message"]["usage"])
        if data.get("type") == "message_delta" and isinstance(data.get("usage"), dict):
            return {**(reported or {}), **data["usage"]}
        return reported
    if api == "responses":
        response = data.get("response")
        if data.get("type") in ("response.completed", "response.incomplete"):
            usage = response.get("usage") if isinstance(response, dict) else None
            return dict(usage) if isinstance(usage, dict) else reported
        return reported
    return dict(data["usage"]) if isinstance(data.get("usage"), dict) else reported


async def _client_leaves_within(reader: asyncio.StreamReader, seconds: float) -> bool:
    """Wait ``seconds``; True if the client hung up meanwhile (e.g. its timeout fired)."""
    if seconds <= 0:
        return False
    probe = asyncio.ensure_future(reader.read(1))
    done, _ = await asyncio.wait({probe}, timeout=seconds)
    if not done:
        probe.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await probe
        return False
    try:
        data = probe.result()
    except ConnectionError:
        return True
    # A byte here would be a pipelined request, which no SDK client sends; it is dropped
    # and the connection closes after this reply (the client then opens a new one).
    return data == b""


def _abort_with_reset(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            # Linger 0: close() sends a RST instead of an orderly FIN.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def _error_body(
    provider: str,
    status: int,
    message: str | None,
    error_type: str | None,
    model: str | None,
    key: str | None = None,
) -> dict[str, Any]:
    model_text = model or "?"
    masked = f"{key[:3]}*****{key[-4:]}" if key and len(key) > 8 else "*****"
    if provider == "anthropic":
        default_type, default_message = _ANTHROPIC_ERRORS.get(
            status, ("api_error" if status >= 500 else "invalid_request_error", "Error")
        )
        return {
            "type": "error",
            "error": {
                "type": error_type or default_type,
                "message": message or default_message.replace("{model}", model_text),
            },
            "request_id": f"req_standin_{time.monotonic_ns():x}",
        }
    default_type, code, default_message = _OPENAI_ERRORS.get(
        status, ("server_error" if status >= 500 else "invalid_request_error", None, "Error")
    )
    return {
        "error": {
            "message": message
            or default_message.replace("{model}", model_text).replace("{masked_key}", masked),
            "type": error_type or default_type,
            "param": None,
            "code": code,
        }
    }


def _api_key(headers: Mapping[str, str]) -> str | None:
    if headers.get("x-api-key"):
        return headers["x-api-key"]
    scheme, _, token = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(block.get("text", "")) for block in content if isinstance(block, dict))
    return ""


def _wire_model(model: str | None) -> str | None:
    if model is None:
        return None
    for prefix in _PROVIDER_PREFIXES:
        if model.startswith(prefix):
            return model[len(prefix) :]
    return model


def _header_number(value: float | str) -> str:
    if isinstance(value, str):
        return value
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def main(argv: Sequence[str] | None = None) -> None:
    """Serve until Ctrl-C, printing the environment that points the SDKs here."""
    parser = argparse.ArgumentParser(description="Local stand-in for the LLM provider APIs")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per answer")
    args = parser.parse_args(argv)
    with StandIn(port=args.port, latency=args.latency) as standin:
        for name, value in standin.env().items():
            print(f"export {name}={value}")
        print(f"# stand-in listening on {standin.url}; Ctrl-C to stop", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
