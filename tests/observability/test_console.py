"""A quiet console: the worker prints one line per failed step attempt (tracebacks only
with --verbose / BATON_LOG_LEVEL=debug). The same worker exports its traces over OTLP to
a local receiver and serves the SDK's Prometheus metrics. Real dev server, real
`baton worker` subprocess."""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import re
import signal
import socket
import sys
import threading
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from temporalio.client import Client, WorkflowFailureError

import baton_temporal as baton
from baton_temporal.cli._devserver import child_output_to, log_tail
from baton_temporal.logs import configure_logging
from baton_temporal.testing import StandIn

from ..cli._util import BATON, clean_env
from .steps import ALL, ask, explode, parse, scramble

pytestmark = pytest.mark.timeout(150)

REPO = Path(__file__).resolve().parents[2]
SONNET = "claude-sonnet-4-20250514"
ATTEMPT_LINE = re.compile(
    r"^WARNING baton\.step: step 'explode' attempt (\d)/3 failed: ValueError: cannot read "
    r"the document \(attempt \1\) \(flow (\S+)\)$"
)


def failing_flow() -> baton.Flow:
    return (
        baton.new(workflow_name="console")
        .add("parse", parse, {})
        .add("explode", explode, {}, deps=["parse"])
    )


class _Receiver(BaseHTTPRequestHandler):
    bodies: list[bytes]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path == "/v1/traces":
            self.server.bodies.append(body)  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def otlp_receiver() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    server.bodies = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def received_spans(server: ThreadingHTTPServer) -> list[tuple[str, int, dict]]:
    """(name, status code, attributes) of every span the receiver got."""
    out = []
    for body in server.bodies:  # type: ignore[attr-defined]
        request = ExportTraceServiceRequest.FromString(body)
        for resource in request.resource_spans:
            for scope in resource.scope_spans:
                for span in scope.spans:
                    attrs = {a.key: a.value for a in span.attributes}
                    out.append((span.name, span.status.code, attrs))
    return out


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
async def test_worker_prints_one_line_per_failed_attempt_and_exports_traces_and_metrics(
    client: Client, task_queue: str, tmp_path: Path, standin: StandIn
) -> None:
    metrics_port = free_port()
    with otlp_receiver() as receiver:
        env = clean_env(
            TEMPORAL_ADDRESS=client.service_client.config.target_host,
            BATON_LEDGER_URL=f"sqlite:///{tmp_path / 'ledger.sqlite3'}",
            PYTHONPATH=f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
            OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{receiver.server_address[1]}",
            OTEL_BSP_SCHEDULE_DELAY="100",
            BATON_METRICS_PORT=str(metrics_port),
            **standin.env(),
        )
        env.pop("BATON_LOG_LEVEL", None)
        proc = await asyncio.create_subprocess_exec(
            BATON, "worker", "--steps", "tests.observability.steps", "--task-queue", task_queue,
            env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        assert proc.stdout is not None
        lines: list[str] = []
        try:
            async with asyncio.timeout(60):
                while not any("baton worker on task queue" in line for line in lines):
                    line = (await proc.stdout.readline()).decode()
                    assert line, "the worker exited:\n" + "".join(lines)
                    lines.append(line)
            flows = [failing_flow(), failing_flow()]
            for flow in flows:
                with pytest.raises(WorkflowFailureError):
                    await flow.run(client, task_queue=task_queue)
            llm_flow = baton.new(workflow_name="console").add("ask", ask, {"model": SONNET})
            await llm_flow.run(client, task_queue=task_queue)
            scraped = await asyncio.to_thread(
                lambda: (
                    urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10)
                    .read()
                    .decode()
                )
            )
            await asyncio.sleep(0.5)  # one export period (100 ms) and then some
        finally:
            proc.send_signal(signal.SIGTERM)
            rest, _ = await asyncio.wait_for(proc.communicate(), 60)
        output = "".join(lines) + rest.decode()

    # The console: one line per failed attempt (3 attempts x 2 flows), nothing else
    # about them, no traceback.
    shown = [line.split(" ", 2)[2] for line in output.splitlines()]  # drop date and time
    attempts = [m for m in map(ATTEMPT_LINE.match, shown) if m]
    assert [(int(m[1]), m[2]) for m in attempts] == [
        (n, flow.workflow_id) for flow in flows for n in (1, 2, 3)
    ], output
    assert "Traceback" not in output and "Completing activity as failed" not in output
    assert len(output.splitlines()) <= len(attempts) + 5, output
    # Traces: the failed step attempts, exported over OTLP/HTTP.
    spans = received_spans(receiver)
    failed_runs = [s for s in spans if s[0] == "RunActivity:explode"]
    assert len(failed_runs) == 6 and {s[1] for s in failed_runs} == {2}  # STATUS_CODE_ERROR
    assert any(s[0] == "RunActivity:parse" for s in spans)
    # One span per LLM call, baton's (the anthropic SDK's own would repeat its tokens).
    with_usage = [s for s in spans if "gen_ai.usage.input_tokens" in s[2]]
    assert [s[0] for s in with_usage] == [f"chat {SONNET}"], [s[0] for s in spans]
    assert with_usage[0][2]["baton.cost_usd"].double_value > 0
    assert standin.billed_calls() == 1
    # The Temporal SDK's Prometheus metrics, with the failures counted.
    failures = re.search(
        r'^temporal_activity_execution_failed_total\{[^}]*activity_type="explode"[^}]*\} (\d+)',
        scraped,
        re.M,
    )
    assert failures and int(failures[1]) == 6, scraped[:2000]


@pytest.fixture
def console() -> Iterator[io.StringIO]:
    """Baton's console handler writing to a buffer; the root logger restored after."""
    root = logging.getLogger()
    saved = (root.level, list(root.handlers))
    stream = io.StringIO()
    yield stream
    for handler in list(root.handlers):
        if handler not in saved[1]:
            root.removeHandler(handler)
    root.setLevel(saved[0])


async def test_verbose_brings_the_tracebacks_back(
    client: Client, task_queue: str, baton_worker, console: io.StringIO, monkeypatch
) -> None:
    monkeypatch.setenv("BATON_LOG_LEVEL", "debug")  # the same as --verbose
    handler = configure_logging(stream=console, timestamps=False)
    handler.setLevel(logging.WARNING)  # the worker's own debug lines are not the point
    flow = failing_flow()
    async with baton_worker(ALL, ledger=False):
        with pytest.raises(WorkflowFailureError):
            await flow.run(client, task_queue=task_queue)
    text = console.getvalue()
    assert [m[1] for m in map(ATTEMPT_LINE.match, text.splitlines()) if m] == ["1", "2", "3"]
    assert text.count("Traceback (most recent call last)") == 3
    assert 'in explode\n    raise ValueError(f"cannot read the document' in text


async def test_control_characters_in_an_error_reach_the_console_as_escapes(
    client: Client, task_queue: str, baton_worker, console: io.StringIO
) -> None:
    """An error message's escape sequences (clear screen, set title, bidi override) are
    printed as text, not sent to the terminal."""
    configure_logging(stream=console, timestamps=False)
    flow = baton.new(workflow_name="console").add("scramble", scramble, {})
    async with baton_worker(ALL, ledger=False):
        with pytest.raises(WorkflowFailureError):
            await flow.run(client, task_queue=task_queue)
    lines = [x for x in console.getvalue().splitlines() if "step 'scramble'" in x]
    assert len(lines) == 1, console.getvalue()
    assert "reply was \\x1b[2J\\x1b]0;owned\\x07 \\u202egnp.exe" in lines[0], lines
    assert not any(ch in console.getvalue() for ch in "\x1b\x07\u202e")


def test_a_bad_log_level_names_the_levels(monkeypatch) -> None:
    monkeypatch.setenv("BATON_LOG_LEVEL", "loud")
    with pytest.raises(ValueError, match=r"BATON_LOG_LEVEL='loud'.*debug, info, warning, error"):
        configure_logging()


def test_dev_server_output_goes_to_its_log_file(tmp_path: Path) -> None:
    """What the embedded server (a child spawned meanwhile) prints lands in the file, and
    our own stdout/stderr are ours again afterwards."""
    import subprocess

    log = tmp_path / "server.log"
    with child_output_to(log):
        subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys; print('banner'); print('level=ERROR x', file=sys.stderr)",
            ],
            check=True,
        )
    assert log.read_text().splitlines() == ["banner", "level=ERROR x"]
    assert log_tail(log) == "    banner\n    level=ERROR x"
    assert os.get_inheritable(1) is not None and os.fstat(1).st_ino != os.stat(log).st_ino


@pytest.mark.parametrize("command", ["worker", "dev", "demo"])
def test_verbose_flag_of_the_commands(command: str, console: io.StringIO, monkeypatch) -> None:
    """`--verbose` on the three commands that run a worker turns the tracebacks on; the
    handler is the one the failing-flow tests above exercise."""
    from baton_temporal.cli._commands import _console_logging, build_parser

    monkeypatch.delenv("BATON_LOG_LEVEL", raising=False)
    for argv, verbose in (([command], False), ([command, "--verbose"], True)):
        args = build_parser().parse_args(argv)
        _console_logging(args, level=logging.INFO, timestamps=False)
        [handler] = [h for h in logging.getLogger().handlers if h.get_name() == "baton.console"]
        assert handler.formatter.verbose is verbose  # type: ignore[union-attr]
