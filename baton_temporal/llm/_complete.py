"""``complete()``: one call to one provider, with errors Temporal knows how to retry."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import json
import logging
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict
from temporalio import activity
from temporalio.exceptions import ApplicationError

from ..usage import LLMUsage, UsageError
from ._beats import call_beats
from ._clients import LLMClients, shared_clients
from ._config import LLMConfig, LLMConfigError
from ._errors import (
    INVALID_LLM_CONFIG,
    INVALID_REQUEST,
    PROVIDER_RETRYABLE,
    aiohttp_cause,
    causes,
    is_header_error,
    malformed_response_error,
    map_provider_error,
    redact,
    redact_forms,
    secret_forms,
)
from ._providers import Provider, resolve_provider
from ._responses import (
    API,
    build_responses_body,
    check_api,
    choose_api,
    extract_responses,
    failed_reason,
)
from ._streaming import StreamBroken, prepare_stream_body, read_stream, stall_limit, wants_stream
from ._usage import unknown_usage, usage_from_reply

__all__ = [
    "DEFAULT_ANTHROPIC_MAX_TOKENS",
    "INVALID_PROVIDER_USAGE",
    "BilledReplyError",
    "LLMResponse",
    "Message",
    "UnansweredRequestError",
    "complete",
]

INVALID_PROVIDER_USAGE = "InvalidProviderUsage"


class BilledReplyError(ApplicationError):
    """A reply the provider answered with success (so billed) that cannot be used.

    ``usage`` is what the reply reported (read before anything else in the body could
    fail), or None when its usage block itself could not be believed; the caller records
    the call either way. Temporal sees an ordinary ``ApplicationError`` of ``type``.

    Example::

        try:
            reply = await complete(messages, model="gpt-4o")
        except BilledReplyError as err:
            ledger_rows.append(err.usage)   # billed though unusable
            raise
    """

    def __init__(
        self, message: str, *, usage: LLMUsage | None, type: str, non_retryable: bool = False
    ) -> None:
        super().__init__(message, type=type, non_retryable=non_retryable)
        self.usage = usage


class UnansweredRequestError(ApplicationError):
    """The request was sent and no reply was read (the client timed out, or the
    connection broke after sending): a provider bills a request it received, so the
    call may be billed, and whether it reached the provider is not known.

    The caller records the call as a lost reply. Temporal sees an ordinary
    ``ApplicationError`` of ``type``.
    """

    def __init__(self, message: str, *, type: str, non_retryable: bool = False) -> None:
        super().__init__(message, type=type, non_retryable=non_retryable)


log = logging.getLogger(__name__)

Message = Mapping[str, Any]
DEFAULT_ANTHROPIC_MAX_TOKENS = 1024
_ROLES = frozenset({"system", "user", "assistant"})
# Keyword arguments for the SDK call itself rather than the request body.
_SDK_OPTIONS = frozenset({"timeout", "extra_headers", "extra_query", "extra_body"})


class LLMResponse(BaseModel):
    """What one provider call produced.

    ``model`` is the model as the provider reported it (e.g. a dated snapshot);
    ``raw_request`` is the JSON body sent (it never holds a key: keys travel in headers)
    and ``raw_response`` the JSON received; both are meant for debug logs.

    Example::

        reply = await complete([{"role": "user", "content": "Hi"}], model="gpt-4o")
        reply.text, reply.usage.input_tokens
    """

    model_config = ConfigDict(frozen=True)

    text: str
    model: str
    provider: Provider
    usage: LLMUsage
    stop_reason: str | None = None
    raw_request: dict[str, Any]
    raw_response: dict[str, Any]
    api: API = "chat"
    """The API that answered: ``"messages"`` (Anthropic), ``"chat"`` or ``"responses"``."""
    streamed: bool = False
    """Whether the reply came as a stream (it is the same reply either way)."""
    output_items: list[Any] = []
    """The reply's raw output items: Responses ``output``, Anthropic ``content`` blocks,
    or the Chat Completions ``message``."""


async def complete(
    messages: Sequence[Message],
    *,
    model: str,
    config: LLMConfig | None = None,
    clients: LLMClients | None = None,
    call_id: str | None = None,
    **params: Any,
) -> LLMResponse:
    """Send ``messages`` to the provider of ``model`` and return its reply and usage.

    ``messages`` are ``{"role": "system" | "user" | "assistant", "content": str}``;
    system messages become Anthropic's ``system`` parameter. ``params`` (``max_tokens``,
    ``temperature``, ...) go into the request body as they are, except that Anthropic
    gets ``max_tokens=1024`` when none is given and OpenAI gets ``max_tokens`` as
    ``max_completion_tokens`` (its reasoning models refuse the old name). ``timeout``,
    ``extra_headers``, ``extra_query`` and ``extra_body`` go to the SDK call.

    ``api`` picks OpenAI's API: ``"responses"`` or ``"chat"``; left out, models OpenAI
    serves only through the Responses API (``o3-pro``, codex models...) use it and the
    rest Chat Completions. ``stream=True`` streams the reply (heartbeating as events
    arrive); left out, a call streams when it needs to (a ``max_tokens`` the Anthropic SDK
    refuses without streaming). Either way the same :class:`LLMResponse` comes back.
    ``stall_timeout`` (seconds) is the longest silence allowed once a stream's output
    flows; by default 80% of the running activity's heartbeat timeout.

    ``config`` defaults to :meth:`LLMConfig.from_env`; ``clients`` defaults to the
    running loop's shared :class:`LLMClients` (:func:`shared_clients`), so connections
    are reused across calls either way.
    ``call_id`` (default: a fresh uuid) lands in ``usage.call_id`` so the ledger can store
    the call once however often its usage is reported.

    Runs anywhere; inside a Temporal activity it heartbeats while waiting. Failures are
    ``ApplicationError``: type ``ProviderRetryable`` (429/5xx/network/timeout/garbled
    reply, with ``next_retry_delay`` from ``retry-after``) or non-retryable
    ``ProviderRejected``, ``UnknownModel``, ``MissingAPIKey``, ``MissingBaseURL``,
    ``InvalidLLMRequest``.

    Example::

        reply = await complete(
            [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "2+2?"}],
            model="claude-sonnet-4-20250514", max_tokens=50,
        )
        print(reply.text, reply.usage)
    """
    provider, name = resolve_provider(model)
    if config is None:
        try:
            config = LLMConfig.from_env()
        except LLMConfigError as err:
            # Inside an activity a plain exception is retried for ever; this cannot heal.
            raise ApplicationError(str(err), type=INVALID_LLM_CONFIG, non_retryable=True) from None
    params = dict(params)
    api = choose_api(provider, name, params.pop("api", None))
    check_call_options(model, params)
    asked = params.pop("stream", None)
    stall = params.pop("stall_timeout", None)
    body, sdk_options = _build_request(provider, name, messages, params, api)
    secrets = config.secrets()
    call_id = call_id or uuid.uuid4().hex

    owned = False  # the caller's clients, or the loop's shared ones: never closed here
    active = clients if clients is not None else shared_clients()
    requested_at = datetime.now(UTC)
    streaming = streamed = False
    try:
        # Built (or found) before the clock starts; raises MissingAPIKey without a key.
        client: Any = active.get(provider, config)
        resource: Any = (
            client.messages
            if api == "messages"
            else client.responses
            if api == "responses"
            else client.chat.completions
        )
        streaming = wants_stream(provider, name, body, client, asked)
        if streaming:
            body = prepare_stream_body(api, body)
        wrapper = resource.with_streaming_response if streaming else resource.with_raw_response
        create: Any = wrapper.create
        timeout = sdk_options.get("timeout")
        timeout_s = timeout if isinstance(timeout, int | float) else config.timeout_s
        started = time.perf_counter()
        async with _heartbeating() if not streaming else contextlib.nullcontext():
            raw = None
            try:
                if streaming:
                    data, streamed = await read_stream(
                        create(**_as_sdk_kwargs(create, body, sdk_options)),
                        api,
                        who=f"{provider} (model {name!r})",
                        first_limit_s=timeout_s,
                        stall_limit_s=float(stall) if stall else stall_limit(timeout_s),
                        redact=lambda text: redact(text, secrets),
                    )
                else:
                    raw = await create(**_as_sdk_kwargs(create, body, sdk_options))
                    content = await raw.http_response.aread()
            except StreamBroken:
                raise
            except Exception as exc:
                mapped = map_provider_error(
                    exc, provider=provider, model=name, secrets=secrets, timeout_s=timeout_s
                )
                if mapped is None and type(exc).__module__.startswith("httpx"):
                    # The body broke off after the SDK handed the response over.
                    mapped = ApplicationError(
                        redact(f"{provider} (model {name!r}) reply broke off: {exc}", secrets),
                        type=PROVIDER_RETRYABLE,
                    )
                if mapped is None:
                    raise
                if raw is not None:
                    # A success status came, then the body broke off: billed, usage unread.
                    raise BilledReplyError(
                        mapped.message,
                        usage=unknown_usage(
                            f"the reply's body broke off after a success status: {mapped.message}",
                            model=name,
                            provider=provider,
                            call_id=call_id,
                            requested_at=requested_at,
                        ),
                        type=mapped.type or PROVIDER_RETRYABLE,
                        non_retryable=mapped.non_retryable,
                    ) from None
                if _maybe_sent(exc):
                    raise UnansweredRequestError(
                        mapped.message,
                        type=mapped.type or PROVIDER_RETRYABLE,
                        non_retryable=mapped.non_retryable,
                    ) from None
                # `from None`: the SDK exception holds the request, headers and key included,
                # and Temporal would serialise a cause into the failure it stores.
                raise mapped from None
        latency_ms = round((time.perf_counter() - started) * 1000)
    except StreamBroken as broken:
        raise _billed_stream_error(broken, provider, name, call_id, requested_at, secrets) from None
    finally:
        if owned:
            await active.aclose()

    if not streaming:
        try:
            data = _parse_json(content, provider, name, secrets)
        except ApplicationError as bad:
            # A success status: the provider billed it, though its body cannot be read.
            raise BilledReplyError(
                bad.message,
                usage=unknown_usage(
                    f"the reply (success status) could not be read: {bad.message}",
                    model=name,
                    provider=provider,
                    latency_ms=latency_ms,
                    call_id=call_id,
                    requested_at=requested_at,
                ),
                type=bad.type or PROVIDER_RETRYABLE,
                non_retryable=bad.non_retryable,
            ) from None
    reported = data.get("model")
    if not isinstance(reported, str) or not reported or len(reported) > 256:
        reported = name
    # The usage first: the reply was billed, and whatever else in it is broken must not
    # keep the call out of the ledger.
    try:
        usage = usage_from_reply(
            data,
            provider=provider,
            model=reported,
            latency_ms=latency_ms,
            call_id=call_id,
            requested_at=requested_at,
        )
    except UsageError as exc:
        reason = redact(str(exc), secrets)
        raise BilledReplyError(
            reason,
            usage=unknown_usage(
                reason,
                model=reported,
                provider=provider,
                latency_ms=latency_ms,
                call_id=call_id,
                requested_at=requested_at,
            ),
            type=INVALID_PROVIDER_USAGE,
            non_retryable=True,
        ) from None
    try:
        if api == "responses":
            failed = failed_reason(data)
            if failed is not None:
                raise BilledReplyError(
                    redact(
                        f"{provider} (model {name!r}) answered a failed response: {failed}; "
                        "will be retried",
                        secrets,
                    ),
                    usage=usage,
                    type=PROVIDER_RETRYABLE,
                )
            text, stop_reason, items = extract_responses(data)
        elif provider == "anthropic":
            text, stop_reason = _extract_anthropic(data)
            items = list(data["content"])
        else:
            text, stop_reason = _extract_openai(data)
            items = [data["choices"][0]["message"]]
    except (KeyError, IndexError, TypeError, AttributeError) as exc:
        error = malformed_response_error(
            provider, name, f"unexpected shape: {type(exc).__name__} {exc}", secrets
        )
        raise BilledReplyError(
            error.message, usage=usage, type=error.type or PROVIDER_RETRYABLE
        ) from None
    return LLMResponse(
        text=text,
        model=reported,
        provider=provider,
        usage=usage,
        stop_reason=stop_reason,
        raw_request=_redacted(body, secrets),
        raw_response=_redacted(data, secrets),
        api=api,
        streamed=streamed,
        output_items=_redacted(items, secrets),
    )


def _billed_stream_error(
    broken: StreamBroken,
    provider: Provider,
    name: str,
    call_id: str,
    requested_at: datetime,
    secrets: list[str],
) -> ApplicationError:
    """The error of a stream that ended badly: billed (with the usage the provider had
    reported, or None) once the provider began answering, else the plain error."""
    error = broken.error
    if not broken.billed:
        return error
    usage = None
    if broken.partial is not None:
        reported = broken.partial.get("model")
        try:
            usage = usage_from_reply(
                broken.partial,
                provider=provider,
                model=reported if isinstance(reported, str) and reported else name,
                call_id=call_id,
                requested_at=requested_at,
            )
        except UsageError as exc:
            log.warning("usage reported before the stream broke cannot be stored: %s", exc)
    return BilledReplyError(
        redact(error.message, secrets),
        usage=usage,
        type=error.type or PROVIDER_RETRYABLE,
        non_retryable=error.non_retryable,
    )


def check_call_options(model: str, params: Mapping[str, Any]) -> None:
    """Refuse a bad ``api=``, ``stream=`` or ``stall_timeout=`` before anything is
    recorded or sent (``InvalidLLMRequest``, non-retryable, naming the fix)."""
    check_api(model, params.get("api"))
    stall = params.get("stall_timeout")
    if stall is not None and (
        isinstance(stall, bool) or not isinstance(stall, int | float) or not 0 < stall < 1e6
    ):
        raise _invalid(
            f"stall_timeout={stall!r}: give the longest silence allowed mid-stream in seconds "
            "(e.g. 60), or leave it out for 80% of the step's heartbeat timeout"
        )
    stream = params.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise _invalid(
            f"stream={stream!r}: use stream=True, stream=False, or leave it out to stream "
            "only when the request needs it"
        )


# Errors that mean the connection was never made (any HTTP library spells them so), or
# never had the request: httpx's wait for a free connection of the pool timed out.
_NOT_CONNECTED = frozenset({"ConnectError", "ConnectTimeout", "UnsupportedProtocol", "PoolTimeout"})
# aiohttp's errors of a connection never made (refused, DNS, TLS, connect timeout, or a
# URL it could not use). Named, as aiohttp is imported only with its transport.
_AIOHTTP_NOT_CONNECTED = (
    "ClientConnectorError",
    "ConnectionTimeoutError",
    "InvalidURL",
    "NonHttpUrlClientError",
    "ClientSSLError",
)


def _maybe_sent(exc: BaseException) -> bool:
    """Whether a request that failed without any reply may have reached the provider: a
    timeout or a connection broken after connecting. Not an error status (answered, not
    billed), nor a connection never made (refused, DNS, connect timeout), nor a request
    that could not even be encoded."""
    connection_errors = tuple(
        sdk.APIConnectionError
        for module in ("anthropic", "openai")
        if (sdk := sys.modules.get(module)) is not None
    )
    if not isinstance(exc, connection_errors):
        return False
    chain = list(causes(exc))
    if any(is_header_error(c) for c in chain):
        return False  # the HTTP client refused to write the request
    aio = aiohttp_cause(exc)
    if aio is not None:
        # The aiohttp transport reports connection errors as httpx ones regardless of
        # when they happened (a server that hung up after the request went out is a
        # ConnectError, even a ConnectTimeout under openai's): aiohttp's own error tells.
        aiohttp = sys.modules["aiohttp"]
        unsent = tuple(
            kind
            for name in _AIOHTTP_NOT_CONNECTED
            if isinstance(kind := getattr(aiohttp, name, None), type)
        )
        return not isinstance(aio, unsent)
    return not any(
        type(c).__name__ in _NOT_CONNECTED
        or isinstance(c, ConnectionRefusedError | UnicodeError | socket.gaierror)
        for c in chain
    )


def _build_request(
    provider: Provider,
    name: str,
    messages: Sequence[Message],
    params: dict[str, Any],
    api: API = "chat",
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The JSON body for the provider, and the SDK-level options apart from it."""
    sdk_options = {k: params.pop(k) for k in list(params) if k in _SDK_OPTIONS}
    checked = _check_messages(messages)
    body: dict[str, Any]
    if api == "responses":
        body = build_responses_body(name, checked, params)
    elif provider == "anthropic":
        system = [m["content"] for m in checked if m["role"] == "system"]
        chat = [m for m in checked if m["role"] != "system"]
        if not chat:
            raise _invalid("Anthropic needs at least one user message besides system ones")
        if system and "system" in params:
            raise _invalid("give the system prompt as a system message or system=, not both")
        body = {"model": name, "messages": chat}
        if system:
            body["system"] = "\n\n".join(_text(s) for s in system)
        body.update(params)
        if body.get("max_tokens") is None:
            body["max_tokens"] = DEFAULT_ANTHROPIC_MAX_TOKENS
    else:
        body = {"model": name, "messages": checked, **params}
        if provider == "openai" and "max_tokens" in body:
            # OpenAI replaced max_tokens with max_completion_tokens and its o-series
            # refuse the old name; local compatible servers often know only the old one.
            limit = body.pop("max_tokens")
            body.setdefault("max_completion_tokens", limit)
    if "extra_body" in sdk_options and isinstance(sdk_options["extra_body"], Mapping):
        # Shown in raw_request too, since the SDK merges it into the body it sends.
        body = {**body, **sdk_options["extra_body"]}
        sdk_options.pop("extra_body")
    return body, sdk_options


def _as_sdk_kwargs(
    create: Any, body: dict[str, Any], sdk_options: dict[str, Any]
) -> dict[str, Any]:
    """Body fields the SDK method names go as keyword arguments; the rest in ``extra_body``.

    SDK releases drop and add parameters (anthropic 2.x has no ``temperature``); the
    provider, not the SDK's signature, should decide what a request may carry.
    """
    known = _parameters(getattr(create, "__func__", create))
    kwargs = {k: v for k, v in body.items() if k in known}
    extra = {k: v for k, v in body.items() if k not in known}
    if extra:
        kwargs["extra_body"] = extra
    return {**kwargs, **sdk_options}


@functools.lru_cache(maxsize=64)
def _parameters(fn: Any) -> frozenset[str]:
    # Bounded: one entry per SDK method; inspect.signature costs ~0.1 ms a call.
    return frozenset(inspect.signature(fn).parameters)


def _check_messages(messages: Sequence[Message]) -> list[dict[str, Any]]:
    if isinstance(messages, str | bytes) or not isinstance(messages, Sequence) or not messages:
        raise _invalid(
            "messages must be a non-empty list of {'role': ..., 'content': ...} mappings, "
            f"got {type(messages).__name__}"
        )
    out = []
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise _invalid(f"messages[{i}] is a {type(message).__name__}, not a mapping")
        role, content = message.get("role"), message.get("content")
        if role not in _ROLES:
            raise _invalid(f"messages[{i}] has role {role!r}; use one of {sorted(_ROLES)}")
        if not isinstance(content, str | list):
            raise _invalid(
                f"messages[{i}] content must be a string (or a list of content blocks), "
                f"got {type(content).__name__}"
            )
        out.append(dict(message))
    return out


def _text(content: str | list[Any]) -> str:
    if isinstance(content, str):
        return content
    return "".join(b.get("text", "") for b in content if isinstance(b, Mapping))


def _invalid(message: str) -> ApplicationError:
    return ApplicationError(message, type=INVALID_REQUEST, non_retryable=True)


def _parse_json(content: bytes, provider: str, name: str, secrets: list[str]) -> dict[str, Any]:
    try:
        data = json.loads(content)
    except (ValueError, RecursionError) as exc:  # nested thousands deep: hostile
        raise malformed_response_error(provider, name, f"invalid JSON: {exc}", secrets) from None
    if not isinstance(data, dict):
        raise malformed_response_error(
            provider, name, f"a JSON {type(data).__name__}, not an object", secrets
        )
    return data


def _extract_anthropic(data: dict[str, Any]) -> tuple[str, str | None]:
    blocks = data["content"]
    if not isinstance(blocks, list):
        raise TypeError("content is not a list")
    text = "".join(b["text"] for b in blocks if isinstance(b, dict) and b.get("type") == "text")
    return text, _stop(data.get("stop_reason"))


def _extract_openai(data: dict[str, Any]) -> tuple[str, str | None]:
    choice = data["choices"][0]
    # content is null for a refusal or a pure tool call: an empty text, not an error.
    text = choice["message"].get("content") or ""
    if not isinstance(text, str):
        raise TypeError(f"message content is a {type(text).__name__}, not a string")
    return text, _stop(choice.get("finish_reason"))


def _stop(reason: Any) -> str | None:
    if reason is not None and not isinstance(reason, str):
        raise TypeError(f"the stop reason is a {type(reason).__name__}, not a string")
    return reason


def _redacted(value: Any, secrets: list[str]) -> Any:
    """A deep copy of a JSON value with any secret scrubbed from its strings."""
    return _redacted_with(value, secret_forms(secrets))


def _redacted_with(value: Any, forms: tuple[str, ...]) -> Any:
    if isinstance(value, str):
        return redact_forms(value, forms, partial=False)  # bodies: exact (quoted) forms only
    if isinstance(value, Mapping):
        # Keys too: a caller's metadata or a provider's reply may key a map by the secret.
        return {
            redact_forms(str(k), forms, partial=False): _redacted_with(v, forms)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_redacted_with(v, forms) for v in value]
    return value


@contextlib.asynccontextmanager
async def _heartbeating() -> AsyncIterator[None]:
    """Heartbeat every few seconds while the body runs, when inside a (non-local) activity.

    A provider can take minutes on a long completion; without heartbeats an activity
    with a heartbeat timeout would be declared lost and retried (and billed) again.
    """
    if not activity.in_activity() or activity.info().is_local:
        yield
        return
    interval, first = call_beats(activity.info())
    beater = asyncio.create_task(_beat(interval, first))
    try:
        yield
    finally:
        beater.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beater


async def _beat(interval: float, first: float) -> None:
    await asyncio.sleep(first)
    while True:
        try:
            activity.heartbeat()
        except Exception:  # a failing heartbeat must not fail the call it accompanies
            log.warning("LLM call heartbeat failed; no more heartbeats", exc_info=True)
            return
        await asyncio.sleep(interval)
