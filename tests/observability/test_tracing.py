"""OpenTelemetry: flow and step spans from temporalio's interceptor, one GenAI span per
LLM call with tokens and cost. Real dev server, real SDK clients against the stand-in,
an in-memory exporter."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from temporalio.client import Client, WorkflowFailureError

import baton_temporal as baton
from baton_temporal.pricing import GenAIPricesPricer
from baton_temporal.testing import Fault, StandIn
from baton_temporal.tracing import start_tracing
from baton_temporal.usage import LLMUsage

from .steps import ALL, ask, parse

pytestmark = pytest.mark.timeout(120)

SONNET = "claude-sonnet-4-20250514"


@pytest.fixture
def spans() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


def _by_name(finished: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    return [s for s in finished if s.name == name]


def _parent_name(finished: tuple[ReadableSpan, ...], span: ReadableSpan) -> str | None:
    if span.parent is None:
        return None
    for other in finished:
        if other.context.span_id == span.parent.span_id:
            return other.name
    return None


async def test_flow_step_and_llm_spans_with_genai_attributes_and_cost(
    client: Client, task_queue: str, baton_worker, standin: StandIn, spans
) -> None:
    provider, exporter = spans
    flow = (
        baton.new(workflow_name="traced")
        .add("parse", parse, {"text": "a b c"})
        .add(
            "claude", ask, {"model": SONNET, "calls": 2, "prompt": "SECRET-PROMPT"}, deps=["parse"]
        )
        .add("openai", ask, {"model": "gpt-4o"}, deps=["parse"])
    )
    # Started by a client that traces too (as `baton start` does with tracing on), so
    # that the whole flow is one trace under its StartWorkflow span.
    traced = Client(
        client.service_client,
        namespace=client.namespace,
        interceptors=[start_tracing(provider=provider).interceptor],
    )
    async with baton_worker(ALL, ledger=False, llm=standin.config(), tracing=provider):
        await flow.run(traced, task_queue=task_queue)
    finished = exporter.get_finished_spans()
    names = [s.name for s in finished]
    # One trace: the flow workflow, a start and a run span per step, a span per LLM call.
    assert len({s.context.trace_id for s in finished}) == 1, names
    [run] = _by_name(finished, "RunWorkflow:baton.Flow")
    assert _parent_name(finished, run) == "StartWorkflow:baton.Flow"
    for step in ("parse", "ask"):
        runs = _by_name(finished, f"RunActivity:{step}")
        assert runs and all(_parent_name(finished, r) == f"StartActivity:{step}" for r in runs)
    claude = _by_name(finished, f"chat {SONNET}")
    openai = _by_name(finished, "chat gpt-4o")
    assert len(claude) == 2 and len(openai) == 1, names
    assert standin.billed_calls() == 3
    pricer = GenAIPricesPricer()
    for span, system in [(claude[0], "anthropic"), (claude[1], "anthropic"), (openai[0], "openai")]:
        a = dict(span.attributes or {})
        assert _parent_name(finished, span) == "RunActivity:ask"
        assert a["gen_ai.operation.name"] == "chat"
        assert a["gen_ai.system"] == system
        assert a["gen_ai.request.max_tokens"] == 50
        assert a["gen_ai.usage.input_tokens"] > 0 and a["gen_ai.usage.output_tokens"] > 0
        assert a["baton.workflow_id"] == flow.workflow_id
        usage = LLMUsage(
            model=a["gen_ai.response.model"],
            provider=system,
            input_tokens=a["gen_ai.usage.input_tokens"],
            output_tokens=a["gen_ai.usage.output_tokens"],
            cache_read_tokens=a.get("gen_ai.usage.cache_read.input_tokens", 0),
            cache_write_tokens=a.get("gen_ai.usage.cache_creation.input_tokens", 0),
        )
        quote = pricer.cost(usage)
        assert quote is not None and quote.cost_usd is not None
        assert a["baton.cost_usd"] == pytest.approx(float(quote.cost_usd))
        assert span.status.status_code == StatusCode.UNSET
    assert {dict(s.attributes)["baton.step"] for s in claude} == {"claude"}
    assert {dict(s.attributes)["baton.call_id"] for s in claude} == {"claude/1/0", "claude/1/1"}
    assert dict(claude[0].attributes)["gen_ai.request.model"] == SONNET
    # No prompt or reply text in spans unless opted in.
    dumped = json.dumps([dict(s.attributes or {}) for s in finished])
    assert "SECRET-PROMPT" not in dumped and "gen_ai.input.messages" not in dumped


async def test_a_failed_call_sets_error_status_and_type(
    client: Client, task_queue: str, baton_worker, standin: StandIn, spans
) -> None:
    provider, exporter = spans
    standin.script("gpt-4o", [Fault.status(400, "bad request for {model}")])
    flow = baton.new(workflow_name="traced").add("bad", ask, {"model": "gpt-4o"})
    async with baton_worker(ALL, ledger=False, llm=standin.config(), tracing=provider):
        with pytest.raises(WorkflowFailureError):
            await flow.run(client, task_queue=task_queue)
    [span] = _by_name(exporter.get_finished_spans(), "chat gpt-4o")
    assert span.status.status_code == StatusCode.ERROR
    assert dict(span.attributes)["error.type"] == "ProviderRejected"
    assert "ProviderRejected" in (span.status.description or "")
    assert "gen_ai.usage.input_tokens" not in dict(span.attributes)


async def test_prompt_text_only_when_opted_in_and_cut(
    client: Client, task_queue: str, baton_worker, standin: StandIn, spans, monkeypatch
) -> None:
    provider, exporter = spans
    monkeypatch.setenv("BATON_TRACE_CONTENT", "true")
    huge = "PROMPT-" + "x" * 100_000
    flow = baton.new(workflow_name="traced").add("big", ask, {"model": SONNET, "prompt": huge})
    async with baton_worker(ALL, ledger=False, llm=standin.config(), tracing=provider):
        await flow.run(client, task_queue=task_queue)
    [span] = _by_name(exporter.get_finished_spans(), f"chat {SONNET}")
    sent = dict(span.attributes)["gen_ai.input.messages"]
    assert "PROMPT-xxx" in sent and len(sent) <= 16 * 1024
    assert json.loads(dict(span.attributes)["gen_ai.output.messages"].rstrip("…"))[0]["role"]


def test_off_by_default_imports_and_installs_nothing() -> None:
    """Without OTEL_EXPORTER_OTLP_* a worker has no tracing interceptor, and neither
    baton nor temporalio's tracing (nor the OpenTelemetry SDK) is imported."""
    code = (
        "import sys, baton_temporal as baton\n"
        "from tests.observability.steps import ALL\n"
        "p = baton.BatonPlugin(steps=ALL, ledger=False)\n"
        "assert p.tracing is None\n"
        "assert not any(m.startswith('opentelemetry') for m in sys.modules), 'imported'\n"
        "assert not any(m.startswith('temporalio.contrib') for m in sys.modules)\n"
        "print('ok')\n"
    )
    env = {
        k: v
        for k, v in __import__("os").environ.items()
        if not k.startswith(("OTEL_", "BATON_TRACING"))
    }
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


async def test_an_unreachable_collector_costs_no_flow(
    client: Client, task_queue: str, baton_worker, standin: StandIn
) -> None:
    """The real OTLP/HTTP exporter aimed at a port nobody listens on: the flow completes,
    the export fails on its background thread, the worker still stops promptly."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = sock.getsockname()[1]
    provider = TracerProvider()
    provider.add_span_processor(
        BatchSpanProcessor(
            OTLPSpanExporter(endpoint=f"http://127.0.0.1:{dead}/v1/traces", timeout=1),
            schedule_delay_millis=50,
        )
    )
    flow = baton.new(workflow_name="traced").add("a", ask, {"model": "gpt-4o", "calls": 2})
    try:
        async with baton_worker(ALL, ledger=False, llm=standin.config(), tracing=provider):
            result = await flow.run(client, task_queue=task_queue)
    finally:
        provider.shutdown()
    assert len(result.results["a"]["texts"]) == 2 and standin.billed_calls() == 2


def test_a_malformed_endpoint_warns_and_exports_nothing(monkeypatch, caplog) -> None:
    from opentelemetry import trace

    from baton_temporal import tracing

    for bad in ("localhost:4318", "not a url", "http://collector:99999"):
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", bad)
        assert tracing.tracing_from_env()
        caplog.clear()
        assert tracing._install_otlp_provider(trace) is None
        assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
        [record] = [r for r in caplog.records if r.name == "baton_temporal.tracing"]
        assert "traces are not exported" in record.getMessage()
        assert "set OTEL_EXPORTER_OTLP_ENDPOINT to e.g. http://localhost:4318" in (
            record.getMessage()
        )
    monkeypatch.setenv("BATON_TRACING", "maybe")
    with pytest.raises(ValueError, match="BATON_TRACING='maybe' is not a switch; set it to true"):
        tracing.tracing_from_env()
    monkeypatch.setenv("BATON_TRACING", "false")
    assert not tracing.tracing_from_env()
    monkeypatch.delenv("BATON_TRACING")
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert not tracing.tracing_from_env()


async def test_a_sandboxed_hand_written_workflow_is_traced_too(
    client: Client, task_queue: str, baton_worker, spans
) -> None:
    from .handwritten import TracedByHand

    provider, exporter = spans
    async with baton_worker(ALL, workflows=[TracedByHand], ledger=False, tracing=provider):
        result = await client.execute_workflow(
            TracedByHand.run, "a b c", id=f"traced-{task_queue}", task_queue=task_queue
        )
    assert result == {"words": 3}
    names = {s.name for s in exporter.get_finished_spans()}
    assert {"RunWorkflow:TracedByHand", "RunActivity:parse"} <= names, names
