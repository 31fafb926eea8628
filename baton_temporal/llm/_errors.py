"""Provider SDK exceptions -> Temporal ``ApplicationError``s that retry (or not) correctly.

Temporal retries an activity forever by default, so the split matters: a request the
provider refused (bad input, bad key, unknown model) must fail for good at once, and a
transient failure (rate limit, overload, network, timeout, garbled reply) must retry,
after the delay the provider asked for when it asked for one.
"""

from __future__ import annotations

import email.utils
import json
import os
import sys
import urllib.parse
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

__all__ = [
    "INVALID_LLM_CONFIG",
    "INVALID_REQUEST",
    "MAX_RETRY_AFTER_ENV",
    "MISSING_API_KEY",
    "MISSING_BASE_URL",
    "NON_RETRYABLE_ERROR_TYPES",
    "PROVIDER_REJECTED",
    "PROVIDER_RETRYABLE",
    "UNKNOWN_MODEL",
    "aiohttp_cause",
    "causes",
    "is_header_error",
    "is_retryable_status",
    "map_provider_error",
    "max_retry_after",
    "redact",
    "redact_forms",
    "retry_delay_from_headers",
    "secret_forms",
]

UNKNOWN_MODEL = "UnknownModel"
MISSING_API_KEY = "MissingAPIKey"
MISSING_BASE_URL = "MissingBaseURL"
PROVIDER_REJECTED = "ProviderRejected"
PROVIDER_RETRYABLE = "ProviderRetryable"
INVALID_REQUEST = "InvalidLLMRequest"
INVALID_LLM_CONFIG = "InvalidLLMConfig"
# The types a workflow should treat as final failures (list them as workflow failure
# types so that a flow fails instead of waiting on an activity that cannot succeed).
NON_RETRYABLE_ERROR_TYPES: tuple[str, ...] = (
    UNKNOWN_MODEL,
    MISSING_API_KEY,
    MISSING_BASE_URL,
    PROVIDER_REJECTED,
    INVALID_REQUEST,
    INVALID_LLM_CONFIG,
)

# A provider's retry-after is obeyed up to this many seconds (BATON_MAX_RETRY_AFTER_S):
# a 503 asking for 86400 s must not park a step for a day without anyone deciding so.
MAX_RETRY_AFTER_ENV = "BATON_MAX_RETRY_AFTER_S"
DEFAULT_MAX_RETRY_AFTER_S = 600.0
# Redaction also hides any run of this many characters of a key (a key cut short by a
# clipped message, or split around a character that was escaped).
_PARTIAL_KEY_CHARS = 12
# Error messages and log lines are short; the run search is a Python loop over the text.
_PARTIAL_SCAN_MAX_CHARS = 16 * 1024

# What retry_delay_from_headers reports at most (the cap above then applies).
_LONGEST_HEADER_DELAY_S = 365 * 86400.0
_RETRYABLE_4XX = frozenset({408, 409, 429})
_MAX_PROVIDER_MESSAGE = 1000

_HINTS = {
    401: "check {key_env}",
    403: "the key in {key_env} lacks permission for this model or endpoint",
    404: "check the model name and the base URL",
}
_KEY_ENV = {
    "anthropic": "ANTHROPIC_API_KEY",
    "openai": "OPENAI_API_KEY",
    "openai-compatible": "BATON_OPENAI_COMPATIBLE_API_KEY",
}


def is_retryable_status(status_code: int) -> bool:
    """408, 409, 429 and every 5xx (Anthropic's 529 overload included) are transient."""
    return status_code in _RETRYABLE_4XX or status_code >= 500


def retry_delay_from_headers(
    headers: Mapping[str, str] | None, *, now: datetime | None = None
) -> timedelta | None:
    """The delay a provider asked for: ``retry-after-ms``, else ``retry-after``.

    ``retry-after`` is seconds (``"2"``, ``"1.5"``) or an HTTP date. Returns ``None`` when
    there is no usable header, so Temporal's own backoff applies.

    Example::

        retry_delay_from_headers({"retry-after-ms": "1500"})   # timedelta(seconds=1.5)
        retry_delay_from_headers({"Retry-After": "2"})         # timedelta(seconds=2)
    """
    if not headers:
        return None
    lowered = {str(k).lower(): str(v).strip() for k, v in headers.items()}
    ms = _number(lowered.get("retry-after-ms"))
    if ms is not None and ms > 0:
        return timedelta(seconds=min(ms / 1000, _LONGEST_HEADER_DELAY_S))
    value = lowered.get("retry-after")
    if not value:
        return None
    seconds = _number(value)
    if seconds is None:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    # 1e308 seconds is a valid number but no timedelta: clamp before building one.
    return timedelta(seconds=min(seconds, _LONGEST_HEADER_DELAY_S)) if seconds > 0 else None


def max_retry_after(environ: Mapping[str, str] | None = None) -> float:
    """The longest provider-requested delay obeyed, in seconds (``BATON_MAX_RETRY_AFTER_S``,
    default 600). A longer ``retry-after`` is cut to this, and the error says so."""
    env = os.environ if environ is None else environ
    raw = env.get(MAX_RETRY_AFTER_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_RETRY_AFTER_S
    value = _number(raw)
    if value is None or value <= 0:
        raise ValueError(
            f"{MAX_RETRY_AFTER_ENV}={raw!r} is not a positive number of seconds; set it to "
            f"e.g. {DEFAULT_MAX_RETRY_AFTER_S:g}, or unset it for the default"
        )
    return value


def redact(text: str, secrets: Iterable[str], *, partial: bool = True) -> str:
    """``text`` with every secret replaced by ``***``.

    Also hidden: the forms an error message may quote a key in (Python ``repr`` of the
    string or of its bytes, with ``\\n`` and ``\\x00`` escapes; JSON; URL-encoded) and any
    run of 12 or more characters of one of them (a key cut short, or split around a
    character) in texts up to 16 KiB; ``partial=False`` skips that run search, whose cost
    grows with the text (request and response bodies). Secrets shorter than 4 are kept,
    since replacing a 1-3 character string everywhere would garble the text.

    Example::

        redact("Illegal header value b'Bearer sk-abc\\ndef123456789'", ["sk-abc\\ndef123456789"])
        # "Illegal header value b'Bearer ***'"
    """
    return redact_forms(text, secret_forms(secrets), partial=partial)


def secret_forms(secrets: Iterable[str]) -> tuple[str, ...]:
    """Every form :func:`redact` hides of ``secrets``, longest first: work out once for
    many texts (a reply's body has dozens of strings; building the forms for each one was
    3% of a busy worker's CPU).

    Example::

        forms = secret_forms(["sk-abc123456789"])
        redact_forms('{"key": "sk-abc123456789"}', forms)   # '{"key": "***"}'
    """
    forms: set[str] = set()
    for secret in secrets:
        if secret and len(secret) >= 4:
            forms.update(_quoted_forms(secret))
    return tuple(sorted(forms, key=lambda f: (-len(f), f)))


def redact_forms(text: str, forms: tuple[str, ...], *, partial: bool = True) -> str:
    """:func:`redact` with the forms from :func:`secret_forms`."""
    if not forms:
        return text
    for form in forms:
        if form in text:
            text = text.replace(form, "***")
    if not partial or len(text) > _PARTIAL_SCAN_MAX_CHARS:
        return text
    return _hide_partial(text, set(forms))


def _quoted_forms(secret: str) -> set[str]:
    forms = {secret, repr(secret)[1:-1], json.dumps(secret)[1:-1]}
    forms.add(urllib.parse.quote(secret, safe=""))
    forms.add(urllib.parse.quote_plus(secret, safe=""))
    raw = secret.encode("utf-8", "surrogatepass")
    forms.add(repr(raw)[2:-1])
    forms.add(raw.decode("latin-1"))
    return {f for f in forms if f}


def _hide_partial(text: str, forms: set[str]) -> str:
    """Replace every run of text made of windows of ``_PARTIAL_KEY_CHARS`` characters that
    also occur in a secret (in any of its forms)."""
    size = _PARTIAL_KEY_CHARS
    grams = {f[i : i + size] for f in forms if len(f) >= size for i in range(len(f) - size + 1)}
    if not grams or len(text) < size:
        return text
    hidden = bytearray(len(text))
    found = False
    for i in range(len(text) - size + 1):
        if text[i : i + size] in grams:
            hidden[i : i + size] = b"\x01" * size
            found = True
    if not found:
        return text
    out: list[str] = []
    i = 0
    while i < len(text):
        if hidden[i]:
            while i < len(text) and hidden[i]:
                i += 1
            out.append("***")
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def map_provider_error(
    exc: BaseException,
    *,
    provider: str,
    model: str,
    secrets: Iterable[str] = (),
    timeout_s: float | None = None,
) -> ApplicationError | None:
    """Translate an ``anthropic`` / ``openai`` SDK exception, or return ``None`` if ``exc``
    is not one of theirs. No API key ever reaches the message: ``secrets`` are scrubbed.
    """
    kinds = _sdk_error_classes()
    secrets = list(secrets)
    who = f"{provider} (model {model!r})"
    if isinstance(exc, UnicodeEncodeError):
        return _header_error(who, provider, model, exc)
    aio = aiohttp_cause(exc)
    if aio is not None and not _is_aiohttp_timeout(aio) and isinstance(exc, kinds["connection"]):
        # Under the aiohttp transport the SDK's exception class is no guide (openai's
        # reports a refused connection as a timeout); aiohttp's own error says what
        # happened.
        why = f"{type(aio).__name__}: {aio}" if str(aio) else type(aio).__name__
        return _retryable(
            f"could not reach {who} ({why}); {_retry_note()}", provider, model, secrets
        )
    if isinstance(exc, kinds["timeout"]):
        within = f" within {timeout_s:g} s" if timeout_s else ""
        return _retryable(
            f"{who} did not answer{within}; the attempt timed out and {_retry_note()}",
            provider,
            model,
            secrets,
        )
    if isinstance(exc, kinds["connection"]):
        cause = exc.__cause__ or exc.__context__
        if cause is not None and is_header_error(cause):
            return _header_error(who, provider, model, cause)
        why = f"{type(cause).__name__}: {cause}" if cause else str(exc)
        if cause is not None and not str(cause):
            why = f"{type(cause).__name__}: the connection was closed or reset"
        return _retryable(
            f"could not reach {who} ({why}); {_retry_note()}", provider, model, secrets
        )
    if isinstance(exc, kinds["status"]):
        status = int(exc.status_code)  # type: ignore[attr-defined]
        response = exc.response  # type: ignore[attr-defined]
        body = getattr(exc, "body", None)
        message = _provider_message(body) or str(getattr(exc, "message", exc))
        error_type = _provider_error_type(body)
        details = {
            "provider": provider,
            "model": model,
            "status_code": status,
            "error_type": error_type,
            "request_id": getattr(exc, "request_id", None),
        }
        label = f"HTTP {status}" + (f" {error_type}" if error_type else "")
        if is_retryable_status(status):
            delay = retry_delay_from_headers(response.headers)
            after = f" after {delay.total_seconds():g} s" if delay else ""
            cap = max_retry_after()
            if delay is not None and delay.total_seconds() > cap:
                details["retry_after_s"] = delay.total_seconds()
                after = (
                    f" after {cap:g} s: the provider asked for {delay.total_seconds():g} s, "
                    f"more than {MAX_RETRY_AFTER_ENV}={cap:g} allows (raise it to wait longer)"
                )
                delay = timedelta(seconds=cap)
            return ApplicationError(
                redact(f"{who} answered {label}: {message} ({_retry_note(after)})", secrets),
                details,
                type=PROVIDER_RETRYABLE,
                next_retry_delay=delay,
            )
        hint = _HINTS.get(status, "")
        hint = f" ({hint.format(key_env=_KEY_ENV.get(provider, 'the API key'))})" if hint else ""
        # Not retried: the same request would be refused again.
        return ApplicationError(
            redact(f"{who} rejected the request with {label}: {message}{hint}", secrets),
            details,
            type=PROVIDER_REJECTED,
            non_retryable=True,
        )
    if isinstance(exc, kinds["validation"]):
        return malformed_response_error(provider, model, str(exc), secrets)
    return None


def malformed_response_error(
    provider: str, model: str, why: str, secrets: Iterable[str] = ()
) -> ApplicationError:
    """A reply we could not read (bad JSON, wrong shape): transient, so retryable."""
    return _retryable(
        f"{provider} (model {model!r}) sent a malformed response ({why}); {_retry_note()}",
        provider,
        model,
        list(secrets),
    )


def _retry_note(after: str = "") -> str:
    """What becomes of a transient failure: retried, unless this was the step's last try.

    Without this, the last attempt's error (the one the workflow sees) would promise a
    retry that never comes.
    """
    if activity.in_activity():
        info = activity.info()
        limit = info.retry_policy.maximum_attempts if info.retry_policy else 0
        if limit and info.attempt >= limit:
            return (
                f"not retried: this was attempt {info.attempt} of the {limit} that the "
                "step's retry_policy allows; raise maximum_attempts to wait longer"
            )
    return f"will be retried{after}"


def _retryable(message: str, provider: str, model: str, secrets: list[str]) -> ApplicationError:
    return ApplicationError(
        redact(message, secrets),
        {"provider": provider, "model": model, "status_code": None},
        type=PROVIDER_RETRYABLE,
    )


def _header_error(who: str, provider: str, model: str, cause: BaseException) -> ApplicationError:
    # The request could not even be written: a malformed key or header. Retrying sends
    # the same bytes, so this fails for good; the header (the key) is not quoted.
    return ApplicationError(
        f"{who}: the HTTP client refused to send the request because a header is malformed "
        f"({type(cause).__name__}); check {_KEY_ENV.get(provider, 'the API key')} and any "
        "extra headers for line breaks, spaces or non-ASCII characters",
        {"provider": provider, "model": model, "status_code": None},
        type=INVALID_LLM_CONFIG,
        non_retryable=True,
    )


def is_header_error(cause: BaseException) -> bool:
    """Whether ``cause`` is the HTTP client refusing to send a malformed header (nothing
    was sent). Example::

        is_header_error(UnicodeEncodeError("ascii", "é", 0, 1, "no"))   # True
    """
    # httpx/h11 raise LocalProtocolError("Illegal header value ..."), and so does baton's
    # aiohttp transport for aiohttp's refusal; a non-ASCII header fails to encode.
    if isinstance(cause, UnicodeEncodeError):
        return True
    return type(cause).__name__ == "LocalProtocolError" and "header" in str(cause).lower()


def causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, then what caused it, and so on (at most 20: a chain may loop). Example::

    any(isinstance(c, ConnectionRefusedError) for c in causes(err))
    """
    link: BaseException | None = exc
    for _ in range(20):
        if link is None:
            return
        yield link
        link = link.__cause__ or link.__context__


def aiohttp_cause(exc: BaseException) -> BaseException | None:
    """The aiohttp error behind ``exc`` (the SDKs' aiohttp transport wraps it in an httpx
    one), if any. Example::

        aiohttp_cause(openai.APIConnectionError(...))   # aiohttp.ServerDisconnectedError
    """
    aiohttp = sys.modules.get("aiohttp")
    if aiohttp is None:
        return None
    return next((c for c in causes(exc) if isinstance(c, aiohttp.ClientError)), None)


def _is_aiohttp_timeout(err: BaseException) -> bool:
    aiohttp = sys.modules["aiohttp"]
    return isinstance(err, aiohttp.ServerTimeoutError | TimeoutError)


def _sdk_error_classes() -> dict[str, tuple[type[BaseException], ...]]:
    # Only SDKs already imported can have raised, so nothing heavy is imported here.
    kinds: dict[str, list[type[BaseException]]] = {
        "timeout": [],
        "connection": [],
        "status": [],
        "validation": [],
    }
    for name in ("anthropic", "openai"):
        sdk = sys.modules.get(name)
        if sdk is None:
            continue
        kinds["timeout"].append(sdk.APITimeoutError)
        kinds["connection"].append(sdk.APIConnectionError)
        kinds["status"].append(sdk.APIStatusError)
        kinds["validation"].append(sdk.APIResponseValidationError)
    return {k: tuple(v) for k, v in kinds.items()}


def _provider_message(body: Any) -> str | None:
    """The provider's own words: Anthropic ``{"error": {"message"}}``; the OpenAI SDK
    hands over the inner ``{"message"}``; a non-JSON body is shown as text."""
    if isinstance(body, Mapping):
        inner = body.get("error")
        if isinstance(inner, Mapping) and inner.get("message"):
            return _clip(str(inner["message"]))
        if isinstance(inner, str) and inner:
            return _clip(inner)
        if body.get("message"):
            return _clip(str(body["message"]))
        return None
    if isinstance(body, str) and body.strip():
        return _clip(body.strip())
    return None


def _provider_error_type(body: Any) -> str | None:
    if isinstance(body, Mapping):
        inner = body.get("error")
        if isinstance(inner, Mapping) and isinstance(inner.get("type"), str):
            return inner["type"]
        if isinstance(body.get("type"), str) and body["type"] != "error":
            return body["type"]
        if isinstance(body.get("code"), str):
            return body["code"]
    return None


def _clip(text: str) -> str:
    if len(text) <= _MAX_PROVIDER_MESSAGE:
        return text
    return text[:_MAX_PROVIDER_MESSAGE] + "..."


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if number == number and number != float("inf") else None  # NaN, inf
