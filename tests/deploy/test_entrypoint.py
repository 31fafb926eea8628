"""The worker image's entrypoint, started as the containers start it.

No container engine runs here, so each test runs the image's ENTRYPOINT + CMD (tini, then
``python -m workers.worker``; the migration's ``baton db upgrade --wait``) as a process,
with the compose worker's environment, pointed at the test's dev server, a throwaway
PostgreSQL and the provider stand-in instead of the compose service names. Then it breaks
things: SIGTERM during a long step, the ledger down, Temporal down, TLS settings that
disagree with the server, a missing certificate.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import signal
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from baton_temporal.cli._demo import free_port
from baton_temporal.cli._devserver import DEV_SERVER_ARGS, temporal_cli_path
from baton_temporal.examples import seed
from baton_temporal.testing import StandIn
from baton_temporal.testing.postgres import PostgresServer, start_postgres

from .test_manifests import ROOT, compose_env, dockerfile_exec_form, resolve, service

BIN = Path(sys.executable).parent  # the image has python and baton on PATH
SLOW_MODEL = "claude-opus-4-20250514"  # the seed's `assess` step in analysis_flow


def image_command(command: list[str] | None = None) -> list[str]:
    """ENTRYPOINT + (command or CMD), as Docker and Kubernetes (``args:``) run them."""
    return [*dockerfile_exec_form("ENTRYPOINT"), *(command or dockerfile_exec_form("CMD"))]


def container_env(service_name: str, tmp_path: Path, **overrides: str) -> dict[str, str]:
    """A compose service's environment with its defaults, and the machine's PATH to python.

    Pass-through entries (provider keys from the host) are left out, as on a host that
    has none; ``overrides`` replace the compose service names with this machine's.
    """
    env = {k: resolve(v) for k, v in compose_env(service(service_name)).items() if v is not None}
    env.update(
        PATH=f"{BIN}:/usr/bin:/bin",
        PYTHONPATH=str(ROOT),  # the image's /app: workers/ and the user's steps
        HOME=str(tmp_path),
        PYTHONUNBUFFERED="1",
        PYTHONDONTWRITEBYTECODE="1",
    )
    env.update(overrides)
    return env


class Proc:
    def __init__(self, proc: asyncio.subprocess.Process, log: Path) -> None:
        self.proc = proc
        self.log = log

    @property
    def output(self) -> str:
        return self.log.read_text(errors="replace")

    async def wait(self, timeout: float) -> int:
        return await asyncio.wait_for(self.proc.wait(), timeout)


@contextlib.asynccontextmanager
async def started(cmd: list[str], env: dict[str, str], cwd: Path) -> AsyncIterator[Proc]:
    log = cwd / f"proc-{uuid.uuid4().hex[:6]}.log"
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            *cmd, env=env, cwd=cwd, stdout=out, stderr=asyncio.subprocess.STDOUT
        )
    handle = Proc(proc, log)
    try:
        yield handle
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGKILL)
            await proc.wait()


async def run_to_end(
    cmd: list[str], env: dict[str, str], cwd: Path, timeout: float
) -> tuple[int, str]:
    async with started(cmd, env, cwd) as proc:
        code = await proc.wait(timeout)
        return code, proc.output


async def http(url: str) -> tuple[int, dict[str, Any] | str]:
    def get() -> tuple[int, dict[str, Any] | str]:
        try:
            with urllib.request.urlopen(url, timeout=5) as reply:
                body = reply.read().decode()
                status = reply.status
        except urllib.error.HTTPError as err:
            body, status = err.read().decode(), err.code
        except OSError as err:
            return 0, str(err)
        try:
            return status, json.loads(body)
        except ValueError:
            return status, body

    return await asyncio.to_thread(get)


async def until(what: str, check: Any, timeout: float = 30.0) -> Any:
    """Poll ``await check()`` until it returns something truthy; fail naming ``what``."""
    deadline = asyncio.get_running_loop().time() + timeout
    last = None
    while asyncio.get_running_loop().time() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}; last: {last}")


@pytest.fixture(scope="module")
def ledger_pg() -> Iterator[PostgresServer]:
    """A PostgreSQL of this module's own: one test stops and restarts it."""
    server = start_postgres()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def temporal_address(temporal_env: WorkflowEnvironment) -> str:
    return temporal_env.client.service_client.config.target_host


def worker_env(tmp_path: Path, temporal: str, ledger_url: str, **extra: str) -> dict[str, str]:
    return container_env(
        "worker",
        tmp_path,
        TEMPORAL_ADDRESS=temporal,
        BATON_LEDGER_URL=ledger_url,
        BATON_TASK_QUEUE=f"deploy-{uuid.uuid4().hex[:10]}",
        BATON_HEALTH_PORT=str(free_port()),
        BATON_METRICS_PORT=str(free_port()),
        **extra,
    )


def health_url(env: dict[str, str], path: str) -> str:
    return f"http://127.0.0.1:{env['BATON_HEALTH_PORT']}{path}"


async def ready(env: dict[str, str]) -> dict[str, Any] | None:
    status, body = await http(health_url(env, "/readyz"))
    return body if status == 200 and isinstance(body, dict) else None


async def migrate(tmp_path: Path, url: str) -> None:
    env = container_env("migrate", tmp_path, BATON_LEDGER_URL=url)
    code, out = await run_to_end(image_command(service("migrate")["command"]), env, tmp_path, 120)
    assert code == 0 and "is up to date" in out, out


# ------------------------------------------------------------------------ the tests


async def test_sigterm_during_a_long_step_lets_it_finish(
    client: Client, temporal_address: str, ledger_pg: PostgresServer, tmp_path: Path
) -> None:
    """The migration, then the worker, as the containers run them; SIGTERM to tini while
    a step waits on a 6 s LLM call: readiness turns 503 at once, liveness stays 200, the
    call finishes and is billed once, and the process exits 0. A second worker finishes
    the flow and its metrics page shows the SDK's metrics and the ledger counters."""
    url = ledger_pg.create_database(f"deploy_{uuid.uuid4().hex[:8]}")
    await migrate(tmp_path, url)
    async with StandIn(latency_by_model={SLOW_MODEL: 6.0}) as standin:
        env = worker_env(tmp_path, temporal_address, url, **standin.env())
        async with started(image_command(), env, tmp_path) as worker:
            body = await until("the worker to be ready", lambda: ready(env), 60)
            assert body["temporal"] == "ok" and body["ledger"] == "ok", body
            handle = await seed.analysis_flow("One.\n\nTwo.").start(
                client, task_queue=env["BATON_TASK_QUEUE"]
            )

            async def slow_call_started() -> bool:
                return any(r.model == SLOW_MODEL for r in standin.requests)

            await until("the slow step's LLM call", slow_call_started)
            worker.proc.send_signal(signal.SIGTERM)  # to tini, PID 1 in the container

            async def draining() -> dict[str, Any] | None:
                status, body = await http(health_url(env, "/readyz"))
                return body if status == 503 else None  # type: ignore[return-value]

            body = await until("readiness to turn 503", draining, 5)
            assert body["draining"] is True, body
            status, live = await http(health_url(env, "/livez"))
            assert status == 200, live
            code = await worker.wait(60)
            assert code == 0, worker.output
            assert "Beginning worker shutdown, will wait 0:10:30" in worker.output
        assert standin.billed_calls(SLOW_MODEL) == 1  # finished, not cut and called again

        env2 = worker_env(tmp_path, temporal_address, url, **standin.env())
        env2["BATON_TASK_QUEUE"] = env["BATON_TASK_QUEUE"]
        async with started(image_command(), env2, tmp_path) as second:
            result = await asyncio.wait_for(handle.result(), 60)
            assert result.steps["assess"].attempt == 1, result.steps
            assert standin.billed_calls() == 2  # assess and report, each once
            metrics_url = f"http://127.0.0.1:{env2['BATON_METRICS_PORT']}/metrics"

            async def written() -> str | None:
                status, text = await http(metrics_url)
                ok = status == 200 and re.search(
                    r"^baton_ledger_writes_total\{.*\} 1$", str(text), re.M
                )
                return str(text) if ok else None

            text = await until("the report's ledger write on the metrics page", written)
            assert "temporal_worker_task_slots_available" in text
            assert "temporal_activity_execution_latency" in text
            assert re.search(r"^baton_ledger_pending_usage\{.*\} 0$", text, re.M), text
            second.proc.send_signal(signal.SIGTERM)
            assert await second.wait(60) == 0, second.output


async def test_ledger_outage_is_known_and_keeps_the_worker_ready(
    client: Client, temporal_address: str, ledger_pg: PostgresServer, tmp_path: Path
) -> None:
    """`baton worker --health-port` with its ledger stopped: still ready (usage waits in
    Temporal), the body and baton_ledger_up say the ledger is down, a flow run meanwhile
    shows its calls as pending usage; once the ledger is back they are written and
    nothing is pending."""
    url = ledger_pg.create_database(f"deploy_{uuid.uuid4().hex[:8]}")
    await migrate(tmp_path, url)
    async with StandIn() as standin:
        env = worker_env(tmp_path, temporal_address, url, **standin.env())
        port = env.pop("BATON_HEALTH_PORT")
        env["BATON_STEPS"] = ""
        cmd = image_command(
            ["baton", "worker", "--steps", "workers.examples.seed", "--health-port", port]
        )
        env_with_port = {**env, "BATON_HEALTH_PORT": port}  # for the URLs only
        metrics_url = f"http://127.0.0.1:{env['BATON_METRICS_PORT']}/metrics"

        async def metric(name: str) -> float | None:
            _, text = await http(metrics_url)
            found = re.findall(rf"^{name}\{{[^}}]*\}} (\S+)$", str(text), re.M)
            return sum(float(v) for v in found) if found else None

        async with started(cmd, env, tmp_path) as worker:
            await until("the worker to be ready", lambda: ready(env_with_port), 60)
            ledger_pg.stop()
            try:

                async def ledger_down() -> dict[str, Any] | None:
                    body = await ready(env_with_port)
                    return body if body and body["ledger"].startswith("down") else None

                body = await until("readiness to report the ledger down", ledger_down, 30)
                assert body["temporal"] == "ok" and body["counters"]["ledger_up"] == 0, body
                assert await metric("baton_ledger_up") == 0
                handle = await seed.analysis_flow("One.\n\nTwo.").start(
                    client, task_queue=env["BATON_TASK_QUEUE"]
                )

                async def pending() -> float | None:
                    # The assess call; the flow then waits for its usage to be written
                    # (baton.record_usage, retried) before the report step runs.
                    return await metric("baton_ledger_pending_usage")

                assert await until("the call to be pending usage", pending, 60) == 1
                assert await metric("baton_ledger_usage_deferred_total") == 1
                assert (await metric("baton_ledger_write_failures_total") or 0) >= 1
            finally:
                ledger_pg.start()

            async def ledger_back() -> dict[str, Any] | None:
                body = await ready(env_with_port)
                return body if body and body["ledger"] == "ok" else None

            await until("the ledger to be back", ledger_back, 30)
            result = await asyncio.wait_for(handle.result(), 90)
            assert result.status == "completed", result

            async def none_pending() -> bool:
                return await metric("baton_ledger_pending_usage") == 0

            await until("the pending usage to be written", none_pending, 30)
            assert await metric("baton_ledger_writes_total") == 2
            assert standin.billed_calls() == 2
            worker.proc.send_signal(signal.SIGTERM)
            assert await worker.wait(60) == 0, worker.output


async def test_temporal_down_turns_readiness_off_not_liveness(
    ledger_pg: PostgresServer, tmp_path: Path
) -> None:
    """A dev server of the test's own, stopped under a running worker."""
    server = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli_path(),
        ui=False,
        dev_server_log_level="error",
        dev_server_extra_args=DEV_SERVER_ARGS,
    )
    url = ledger_pg.create_database(f"deploy_{uuid.uuid4().hex[:8]}")
    await migrate(tmp_path, url)
    env = worker_env(tmp_path, server.client.service_client.config.target_host, url)
    try:
        async with started(image_command(), env, tmp_path) as worker:
            await until("the worker to be ready", lambda: ready(env), 60)
            await server.shutdown()

            async def not_ready() -> dict[str, Any] | None:
                status, body = await http(health_url(env, "/readyz"))
                return body if status == 503 else None  # type: ignore[return-value]

            body = await until("readiness to turn 503", not_ready, 30)
            assert body["temporal"].startswith("unreachable"), body
            status, live = await http(health_url(env, "/livez"))
            assert status == 200, live
            # Stopping must not hang on the missing server either.
            worker.proc.send_signal(signal.SIGTERM)
            code = await worker.wait(60)
            assert code == 0, worker.output
    finally:
        with contextlib.suppress(Exception):
            await server.shutdown()


async def test_an_api_key_against_a_plaintext_server_names_the_tls_switch(
    temporal_address: str, ledger_pg: PostgresServer, tmp_path: Path
) -> None:
    url = ledger_pg.create_database(f"deploy_{uuid.uuid4().hex[:8]}")
    await migrate(tmp_path, url)
    env = worker_env(tmp_path, temporal_address, url, TEMPORAL_API_KEY="REPLACE_ME")
    code, out = await run_to_end(image_command(), env, tmp_path, 60)
    assert code == 2, out
    assert "TLS is on because TEMPORAL_API_KEY is set" in out, out
    assert "TEMPORAL_TLS=false" in out and "Traceback" not in out, out


async def test_tls_off_against_a_tls_server_says_to_turn_it_on(
    ledger_pg: PostgresServer, tmp_path: Path
) -> None:
    """A TLS listener (a local TLS server stand-in: any TLS endpoint) with TLS off."""
    import datetime as dt
    import ssl

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    (tmp_path / "c.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "k.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tmp_path / "c.pem", tmp_path / "k.pem")

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    tls_server = await asyncio.start_server(hang_up, "127.0.0.1", 0, ssl=context)
    port = tls_server.sockets[0].getsockname()[1]
    url = ledger_pg.create_database(f"deploy_{uuid.uuid4().hex[:8]}")
    await migrate(tmp_path, url)
    env = worker_env(tmp_path, f"127.0.0.1:{port}", url)
    try:
        code, out = await run_to_end(image_command(), env, tmp_path, 60)
    finally:
        tls_server.close()
    assert code == 2, out
    assert "TLS is off because no TEMPORAL_TLS" in out, out
    assert "set TEMPORAL_TLS=true" in out and "Traceback" not in out, out


@pytest.mark.parametrize(
    ("settings", "named", "fix"),
    [
        (
            {"TEMPORAL_TLS_CLIENT_CERT_PATH": "/etc/temporal-tls/tls.crt",
             "TEMPORAL_TLS_CLIENT_KEY_PATH": "/etc/temporal-tls/tls.key"},
            "TEMPORAL_TLS_CLIENT_CERT_PATH='/etc/temporal-tls/tls.crt' names no file",
            "TEMPORAL_TLS_CLIENT_CERT_DATA",
        ),
        (
            {"TEMPORAL_TLS_CLIENT_CERT_DATA": "REPLACE_ME"},
            "the key is missing",
            "TEMPORAL_TLS_CLIENT_KEY_PATH",
        ),
        (
            {"TEMPORAL_TLS": "false", "TEMPORAL_TLS_CLIENT_CERT_DATA": "x",
             "TEMPORAL_TLS_CLIENT_KEY_DATA": "y"},
            "TEMPORAL_TLS=false turns TLS off, but a client certificate is set",
            "remove TEMPORAL_TLS",
        ),
    ],
)  # fmt: skip
async def test_bad_certificate_settings_stop_the_worker_with_the_fix(
    settings: dict[str, str], named: str, fix: str, temporal_address: str, tmp_path: Path
) -> None:
    env = worker_env(tmp_path, temporal_address, "postgresql://unused@127.0.0.1:1/x", **settings)
    env["BATON_LEDGER_URL"] = ""  # the TLS check comes before any connection
    code, out = await run_to_end(image_command(), env, tmp_path, 60)
    assert code == 2, out
    assert named in out and fix in out, out
    assert "Traceback" not in out and "FileNotFoundError" not in out, out
