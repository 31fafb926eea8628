"""Provider SDK exceptions -> Temporal ``ApplicationError``s that retry (or not) correctly.

Temporal retries an activity forever by default, so the split matters: a request the
provider refused (bad input, bad key, unknown model) must fail for good at once, and a
transient failure (rate limit, overload, network, timeout, garbled reply) must retry,
after the delay the provider asked for when it asked for one.
"""

from __future__ import annotations

import email.utils
import sys
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

__all__ = [
    "INVALID_REQUEST",
    "MISSING_API_KEY",
    "MISSING_BASE_URL",
    "NON_RETRYABLE_ERROR_TYPES",
    "PROVIDER_REJECTED",
    "PROVIDER_RETRYABLE",
    "UNKNOWN_MODEL",
    "is_retryable_status",
    "map_provider_error",
    "redact",
    "retry_delay_from_headers",
]

UNKNOWN_MODEL = "UnknownModel"
MISSING_API_KEY = "MissingAPIKey"
MISSING_BASE_URL = "MissingBaseURL"
PROVIDER_REJECTED = "ProviderRejected"
PROVIDER_RETRYABLE = "ProviderRetryable"
INVALID_REQUEST = "InvalidLLMRequest"
# The types a workflow should treat as final failures (list them as workflow failure
# types so that a flow fails instead of waiting on an activity that cannot succeed).
NON_RETRYABLE_ERROR_TYPES: tuple[str, ...] = (
    UNKNOWN_MODEL,
    MISSING_API_KEY,
    MISSING_BASE_URL,
    PROVIDER_REJECTED,
    INVALID_REQUEST,
)

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
        return timedelta(milliseconds=ms)
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
    return timedelta(seconds=seconds) if seconds > 0 else None


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret replaced by ``***`` (secrets shorter than 4 are kept,
    since replacing a 1-3 character string everywhere would garble the text)."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return text


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
