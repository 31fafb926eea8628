"""OpenTelemetry traces of flows, steps and LLM calls, exported over OTLP/HTTP.

Off unless switched on; then a worker's :class:`~baton_temporal.BatonPlugin` adds
temporalio's own ``TracingInterceptor`` (spans for starting and running the flow
workflow and each step activity) and ``call_llm`` opens one span per LLM call, named
after the OpenTelemetry GenAI conventions (``chat claude-sonnet-4-20250514``):

======================================== =================================================
``gen_ai.operation.name``                ``chat``
``gen_ai.system``, ``gen_ai.provider.name`` ``anthropic`` or ``openai`` (an OpenAI-compatible
                                         server: ``openai``, and ``baton.provider``
                                         ``openai-compatible``)
``gen_ai.request.model``                 the model asked for
``gen_ai.request.max_tokens``            the output limit sent (Anthropic's default 1024)
``gen_ai.request.temperature``           when given
``gen_ai.response.model``               the model the provider reported
``gen_ai.response.finish_reasons``       the stop reason
``gen_ai.usage.input_tokens``            all prompt tokens, cached ones included
``gen_ai.usage.output_tokens``           output tokens (reasoning included)
``gen_ai.usage.cache_read.input_tokens`` the parts of the prompt read from / written to the
``gen_ai.usage.cache_creation.input_tokens`` provider's cache
``baton.cost_usd``                       the call's cost (absent when the model is unpriced)
``baton.price_model``                    the price entry that matched
``baton.step`` / ``baton.workflow_id`` / which step attempt made the call
``baton.attempt`` / ``baton.call_id``
``error.type``                           on failure: the error type (``ProviderRetryable``...)
======================================== =================================================

A failed call sets the span's status to ERROR with a one-line description. Prompt and
reply text are NOT put in spans unless you opt in with ``BATON_TRACE_CONTENT=true`` (or
the GenAI instrumentations' ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true``);
then ``gen_ai.input.messages`` / ``gen_ai.output.messages`` hold them as JSON, cut at
16 KB each.

When is it on? ``BatonPlugin(tracing=True/False)`` decides; by default it is on when
``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` is set (or
``BATON_TRACING=true``), and ``OTEL_SDK_DISABLED=true`` / ``OTEL_TRACES_EXPORTER=none``
/ ``BATON_TRACING=false`` keep it off. With an endpoint set and no tracer provider
installed yet, baton installs one that exports in batches over OTLP/HTTP (the exporter
reads the other ``OTEL_EXPORTER_OTLP_*`` settings: headers, timeout...); with a provider
of your own installed first, spans go to it. Export runs on a background thread: a
collector that is down or unreachable costs log lines, never a flow.

Off, nothing here imports OpenTelemetry (``import baton_temporal`` stays light) and a
call pays one attribute lookup. Workflow code never imports it. Needs the ``otel``
extra: ``pip install 'baton-temporal[otel]'``.

Example::

    OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318 OTEL_SERVICE_NAME=my-worker \\
        baton worker --steps myapp.steps
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

__all__ = ["Tracing", "capture_content_from_env", "start_tracing", "tracing_from_env"]

log = logging.getLogger("baton_temporal.tracing")

T = TypeVar("T")

ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
MAX_CONTENT_CHARS = 16 * 1024
_ON = ("1", "true", "yes", "on")
_OFF = ("0", "false", "no", "off")
_LOCK = threading.Lock()
_INSTALLED: Any = None  # the SDK tracer provider baton installed, if it did
_GLOBAL: Tracing | None = None  # what start_tracing() made for the global provider


def _switch(env: Mapping[str, str], key: str) -> bool | None:
    raw = env.get(key, "").strip().lower()
    if not raw:
        return None
    if raw in _ON:
        return True
    if raw in _OFF:
        return False
    raise ValueError(f"{key}={raw!r} is not a switch; set it to true or false")


def tracing_from_env(environ: Mapping[str, str] | None = None) -> bool:
    """Whether tracing is on by the environment (see the module's docstring)."""
    env = os.environ if environ is None else environ
    if _switch(env, "OTEL_SDK_DISABLED"):
        return False
    if env.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return False
    explicit = _switch(env, "BATON_TRACING")
    if explicit is not None:
        return explicit
    return any(env.get(k, "").strip() for k in ENDPOINT_VARIABLES)


def capture_content_from_env(environ: Mapping[str, str] | None = None) -> bool:
    """Whether prompt and reply text go into LLM spans (off unless opted in)."""
    env = os.environ if environ is None else environ
    return bool(
        _switch(env, "BATON_TRACE_CONTENT")
        or _switch(env, "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT")
    )


@dataclass
class Tracing:
    """What a plugin with tracing on holds: the tracer, the Temporal interceptor, the
    content switch. Made by :func:`start_tracing`."""

    tracer: Any
    interceptor: Any  # temporalio.contrib.opentelemetry.TracingInterceptor
    capture_content: bool = False
    provider: Any = None  # the provider baton installed (flushed when a worker stops)
    _pricer: Any = field(default=None, repr=False)

    def pricer(self) -> Any:
        """The pricer for calls made without a ledger (``pricer_from_env``), or None."""
        if self._pricer is None:
            from .pricing import pricer_from_env

            try:
                self._pricer = pricer_from_env()
            except ValueError as err:
                log.warning("LLM spans carry no cost: %s", err)
                self._pricer = False
        return self._pricer or None

    def flush(self, timeout_s: float = 5.0) -> None:
        """Export what is buffered, waiting at most ``timeout_s`` (a worker's end)."""
        if self.provider is not None:
            with contextlib.suppress(Exception):
                self.provider.force_flush(int(timeout_s * 1000))


def start_tracing(*, provider: Any = None, capture_content: bool | None = None) -> Tracing:
    """Import OpenTelemetry and return the pieces a plugin needs. Spans go to
    ``provider`` (a ``TracerProvider``) if given; else to the global provider, which is
    first set to an OTLP/HTTP exporter if the environment names an endpoint and no
    provider is installed yet.

    Raises ``ImportError`` naming the ``otel`` extra when OpenTelemetry is missing.
    """
    try:
        from opentelemetry import trace
        from temporalio.contrib.opentelemetry import TracingInterceptor
    except ImportError as err:
        raise ImportError(
            f"tracing needs OpenTelemetry ({err}); install it with "
            "`pip install 'baton-temporal[otel]'`, or unset OTEL_EXPORTER_OTLP_ENDPOINT / "
            "set BATON_TRACING=false"
        ) from err
    global _GLOBAL
    if provider is None and capture_content is None and _GLOBAL is not None:
        # One per process: the client's and the worker's interceptor must be the same
        # object, or a worker built from a tracing client would trace everything twice.
        return _GLOBAL
    if provider is None:
        installed = _install_otlp_provider(trace)
        tracer, temporal_tracer = trace.get_tracer("baton_temporal"), None
    else:
        installed = provider
        tracer = provider.get_tracer("baton_temporal")
        temporal_tracer = provider.get_tracer("temporalio.contrib.opentelemetry")
    # Flows are mostly started by the CLI, another service or a schedule, without a
    # client span to hang workflow spans on: create them anyway.
    interceptor = TracingInterceptor(temporal_tracer, always_create_workflow_spans=True)
    if capture_content is None:
        capture_content = capture_content_from_env()
    made = Tracing(
        tracer=tracer, interceptor=interceptor, capture_content=capture_content, provider=installed
    )
    if provider is None:
        _GLOBAL = made
    return made


def _install_otlp_provider(trace: Any) -> Any:
    """The SDK provider exporting over OTLP/HTTP, installed once per process; None when
    no endpoint is set or someone else installed a provider already."""
    global _INSTALLED
    with _LOCK:
        if _INSTALLED is not None:
            return _INSTALLED
        if not any(os.environ.get(k, "").strip() for k in ENDPOINT_VARIABLES):
            return None
        if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
            return None  # the program set up its own: spans go there
        endpoint = next(os.environ[k] for k in ENDPOINT_VARIABLES if os.environ.get(k, "").strip())
        problem = endpoint_problem(endpoint)
        if problem:
            # Not fatal: flows run the same without their traces.
            log.warning("traces are not exported: %s", problem)
            return None
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor
        except ImportError as err:
            raise ImportError(
                f"exporting traces over OTLP needs the OpenTelemetry SDK ({err}); install "
                "`pip install 'baton-temporal[otel]'`"
            ) from err
        protocol = os.environ.get(
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "")
        ).strip()
        if protocol and protocol != "http/protobuf":
            log.warning(
                "OTEL_EXPORTER_OTLP_PROTOCOL=%s: baton exports traces over HTTP "
                "(http/protobuf); point the endpoint at the collector's HTTP port (4318)",
                protocol,
            )
        attributes: dict[str, Any] = {}
        if not os.environ.get("OTEL_SERVICE_NAME") and "service.name=" not in os.environ.get(
            "OTEL_RESOURCE_ATTRIBUTES", ""
        ):
            attributes["service.name"] = "baton-worker"
        provider = TracerProvider(resource=Resource.create(attributes))
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        trace.set_tracer_provider(provider)
        _INSTALLED = provider
        log.info("exporting traces over OTLP/HTTP to %s", endpoint)
        return provider


def endpoint_problem(endpoint: str) -> str | None:
    """What is wrong with an OTLP/HTTP endpoint setting, with the fix; None if usable."""
    from urllib.parse import urlsplit

    value = endpoint.strip()
    try:
        parts = urlsplit(value)
        _ = parts.port  # ValueError for a port that is not one
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https"):
        return (
            f"the OTLP endpoint {value!r} is not an http(s) URL; set "
            "OTEL_EXPORTER_OTLP_ENDPOINT to e.g. http://localhost:4318 (the collector's "
            "OTLP/HTTP port)"
        )
    if not parts.hostname or any(c.isspace() for c in value):
        return (
            f"the OTLP endpoint {value!r} names no host; set OTEL_EXPORTER_OTLP_ENDPOINT to "
            "e.g. http://localhost:4318"
        )
    return None


def anthropic_client_options() -> dict[str, Any]:
    """Options for the worker's Anthropic clients while baton traces: the SDK's own span
    per call off. baton's span replaces it, and the SDK's carries the same
    ``gen_ai.usage.*`` numbers: GenAI dashboards that sum tokens over spans would count
    every Anthropic call twice. Any ``ANTHROPIC_OPEN_TELEMETRY*`` variable you set keeps
    the SDK's own behaviour (an SDK without the option is left alone too)."""
    if any(k.startswith("ANTHROPIC_OPEN_TELEMETRY") for k in os.environ):
        return {}
    try:
        import inspect

        import anthropic

        parameters = inspect.signature(anthropic.AsyncAnthropic.__init__).parameters
    except (ImportError, TypeError, ValueError):
        return {}
    if "open_telemetry" not in parameters:
        return {}
    return {"open_telemetry": {"traces": False}}


# ----------------------------------------------------------------------------- LLM spans


async def trace_llm_call(
    tracing: Tracing | None,
    call: Awaitable[T],
    *,
    model: str,
    messages: Sequence[Any],
    params: Mapping[str, Any],
    job: Any,
    call_id: str,
    pricer: Any = None,
) -> T:
    """Await ``call`` (a ``complete(...)``) inside an LLM span; just await it when off."""
    if tracing is None:
        return await call
    from opentelemetry.trace import SpanKind, Status, StatusCode

    system, provider, name = _provider_of(model)
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.system": system,
        "gen_ai.provider.name": system,
        "gen_ai.request.model": name,
        "baton.provider": provider,
        "baton.step": str(getattr(job, "step", "")),
        "baton.workflow_id": str(getattr(job, "workflow_id", "")),
        "baton.attempt": int(getattr(job, "attempt", 0) or 0),
        "baton.call_id": call_id,
    }
    limit = params.get("max_tokens", params.get("max_completion_tokens"))
    if limit is None and provider == "anthropic":
        from .llm._complete import DEFAULT_ANTHROPIC_MAX_TOKENS

        limit = DEFAULT_ANTHROPIC_MAX_TOKENS
    if isinstance(limit, int) and not isinstance(limit, bool):
        attributes["gen_ai.request.max_tokens"] = limit
    temperature = params.get("temperature")
    if isinstance(temperature, int | float) and not isinstance(temperature, bool):
        attributes["gen_ai.request.temperature"] = float(temperature)
    if tracing.capture_content:
        attributes["gen_ai.input.messages"] = _content(messages)
    with tracing.tracer.start_as_current_span(
        f"chat {name}",
        kind=SpanKind.CLIENT,
        attributes=attributes,
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        try:
            response = await call
        except BaseException as err:
            usage = getattr(err, "usage", None)  # a billed reply that was unusable
            if usage is not None:
                _record_usage(span, usage, pricer or tracing.pricer())
            from .logs import describe_error

            kind = getattr(err, "type", None) or type(err).__name__
            span.set_attribute("error.type", str(kind))
            span.set_status(Status(StatusCode.ERROR, describe_error(err)))
            raise
        usage = getattr(response, "usage", None)
        if usage is not None:
            _record_usage(span, usage, pricer or tracing.pricer())
        span.set_attribute("gen_ai.response.model", str(getattr(response, "model", name)))
        stop = getattr(response, "stop_reason", None)
        if isinstance(stop, str):
            span.set_attribute("gen_ai.response.finish_reasons", [stop])
        if tracing.capture_content:
            text = getattr(response, "text", "")
            span.set_attribute(
                "gen_ai.output.messages", _content([{"role": "assistant", "content": text}])
            )
        return response


def _provider_of(model: str) -> tuple[str, str, str]:
    """(gen_ai.system, baton's provider, the model name sent) without ever raising: a
    bad model string fails the call itself, with its own error, inside the span."""
    from .llm._providers import resolve_provider

    try:
        provider, name = resolve_provider(model)
    except Exception:
        return "unknown", "unknown", model[:256]
    return ("anthropic" if provider == "anthropic" else "openai"), provider, name[:256]


def _record_usage(span: Any, usage: Any, pricer: Any) -> None:
    span.set_attribute("gen_ai.response.model", usage.model)
    span.set_attribute("gen_ai.usage.input_tokens", usage.input_tokens)
    span.set_attribute("gen_ai.usage.output_tokens", usage.output_tokens)
    if usage.cache_read_tokens:
        span.set_attribute("gen_ai.usage.cache_read.input_tokens", usage.cache_read_tokens)
    if usage.cache_write_tokens:
        span.set_attribute("gen_ai.usage.cache_creation.input_tokens", usage.cache_write_tokens)
    if pricer is None:
        return
    try:
        quote = pricer.cost(usage)
    except Exception as err:  # a user's pricer that breaks must not break the call
        log.debug("no cost for the LLM span: %s", err)
        return
    if quote is not None and quote.cost_usd is not None:
        span.set_attribute("baton.cost_usd", float(quote.cost_usd))
        span.set_attribute("baton.price_model", quote.price_model)


def _content(messages: Sequence[Any]) -> str:
    try:
        text = json.dumps(list(messages), default=str, ensure_ascii=False)
    except (TypeError, ValueError):
        text = str(messages)
    if len(text) > MAX_CONTENT_CHARS:
        text = text[: MAX_CONTENT_CHARS - 1] + "…"
    return text
