"""A worker whose ledger is not ready: refused early by the worker program; in process,
it keeps the usage in Temporal until the ledger is migrated."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from pathlib import Path

from temporalio.client import Client

import baton_temporal as baton
from baton_temporal.ledger import LedgerStore
from baton_temporal.testing import StandIn
from baton_temporal.testing.postgres import PostgresServer
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
