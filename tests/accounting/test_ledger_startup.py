"""A worker whose ledger is not ready: refused early by the worker program; in process,
it keeps the usage in Temporal until the ledger is migrated."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.worker import Worker

import baton_temporal as baton
from baton_temporal.ledger import LedgerStore
from baton_temporal.ledger._pg_writer import PgUsageWriter
from baton_temporal.testing import StandIn
from baton_temporal.testing.postgres import PostgresServer, start_postgres
from tests.ledger_support import ledger_rows

from .steps import ALL, ask

ROOT = Path(__file__).resolve().parents[2]


async def test_worker_program_refuses_an_unmigrated_ledger(postgres_server: PostgresServer) -> None:
    url = postgres_server.create_database(f"u_{uuid.uuid4().hex[:12]}")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "workers.worker",
        cwd=ROOT,
        env={
            **os.environ,
            "BATON_STEPS": "tests.accounting.steps",
            "BATON_LEDGER_URL": url,
            "TEMPORAL_ADDRESS": "127.0.0.1:1",
        },
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 2
    assert b"has no ledger tables" in err and b"baton db upgrade" in err


async def test_unmigrated_ledger_keeps_usage_until_migrated(
    client: Client,
    task_queue: str,
    baton_worker,
    standin: StandIn,
    postgres_server: PostgresServer,
) -> None:
    url = postgres_server.create_database(f"u_{uuid.uuid4().hex[:12]}")
    store = LedgerStore.from_url(url)
    flow = baton.new(workflow_name="late-ledger").add("a", ask, {"model": "gpt-4o"})
    try:
        async with baton_worker(ALL, ledger=store, llm=standin.config(), migrate=False):
            handle = await flow.start(client, task_queue=task_queue)
            await asyncio.sleep(2)
            assert (await handle.query("baton.steps"))["a"]["state"] == "running"
            await store.migrate()
            await asyncio.wait_for(handle.result(), 60)
        rows = await ledger_rows(store, flow.workflow_id)
    finally:
        await store.close()
    assert len(rows) == 1 == standin.billed_calls()


@pytest.mark.slow
async def test_a_postgres_url_worker_keeps_usage_while_the_ledger_is_down(
    client: Client, task_queue: str, standin: StandIn
) -> None:
    """The worker's own PostgreSQL writer (BatonPlugin(ledger="postgresql://...")): the
    database is down when the worker starts and while the steps call the model; once it
    is back, every call is in the ledger exactly once."""
    server = start_postgres()
    try:
        url = server.url + "?application_name=baton%20worker"
        async with LedgerStore.from_url(url) as store:
            await store.migrate()
        server.stop()
        flow = (
            baton.new(workflow_name="down-ledger")
            .add("a", ask, {"model": "gpt-4o", "calls": 2})
            .add("b", ask, {"model": "claude-sonnet-4-20250514"}, deps=["a"])
        )
        plugin = baton.BatonPlugin(steps=ALL, ledger=url, llm=standin.config(), debug=True)
        async with Worker(client, task_queue=task_queue, plugins=[plugin]):
            handle = await flow.start(client, task_queue=task_queue)
            await asyncio.sleep(3)
            resources = plugin.resources()
            assert resources is not None and isinstance(resources.store, PgUsageWriter)
            assert (await handle.query("baton.steps"))["a"]["state"] == "running"
            server.start()
            await asyncio.wait_for(handle.result(), 90)
        async with LedgerStore.from_url(url) as store:
            rows = await ledger_rows(store, flow.workflow_id)
        assert standin.billed_calls() == 3
        assert sorted(r["step"] for r in rows) == ["a", "a", "b"]
        assert len({r["call_key"] for r in rows}) == 3
        assert all(r["status"] == "ok" for r in rows)
    finally:
        server.close()
